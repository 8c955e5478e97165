//! Each backup file checked against its manifest: every record parses, the SHA-256 and the user
//! count match (and those of a shard's members file); an encrypted file without its key, by its
//! SHA-256 alone.

use super::FileCheck;
use crate::backup_file::{
    Identities, Manifest, for_each_record, is_age_encrypted, names, sha256_file,
};
use crate::location::Location;
use anyhow::{Result, bail};

/// Checks one file against its manifest. An encrypted file without identities is checked by
/// its SHA-256 alone, which needs a manifest.
pub fn check_file(path: &Location, ids: &Identities) -> Result<(FileCheck, Option<Manifest>)> {
    let mut check = FileCheck {
        path: path.clone(),
        users: None,
        manifest: false,
        records_read: true,
        problems: Vec::new(),
    };
    let manifest_path = names::manifest_path(path);
    let has_manifest = manifest_path.exists();
    if ids.is_empty() && is_age_encrypted(path)? {
        if !has_manifest {
            bail!(
                "{} is encrypted with age and has no manifest ({}): without --identity there \
                 is nothing to check it against",
                path.display(),
                manifest_path.display()
            );
        }
        check.records_read = false;
    } else {
        match for_each_record(path, ids, |_, _| Ok(())) {
            Ok(n) => check.users = Some(n),
            Err(e) => check.problems.push(format!("{e:#}")),
        }
    }
    if !has_manifest {
        return Ok((check, None));
    }
    check.manifest = true;
    let manifest = match Manifest::read(&manifest_path) {
        Ok(m) => m,
        Err(e) => {
            check.problems.push(format!("{e:#}"));
            return Ok((check, None));
        }
    };
    match sha256_file(path) {
        Ok(sum) if sum != manifest.sha256 => check.problems.push(format!(
            "SHA-256 is {sum}, the manifest says {}: the file was changed or damaged",
            manifest.sha256
        )),
        Ok(_) => {}
        Err(e) => check.problems.push(format!("{e:#}")),
    }
    if let Some(split) = &manifest.memberships {
        let file = path.with_file_name(&split.file);
        match sha256_file(&file) {
            Ok(sum) if sum != split.sha256 => check.problems.push(format!(
                "members file {}: SHA-256 is {sum}, the manifest says {}: the file was changed \
                 or damaged",
                file.display(),
                split.sha256
            )),
            Ok(_) if check.records_read => match for_each_record(&file, ids, |_, _| Ok(())) {
                Ok(n) if n != split.count => check.problems.push(format!(
                    "members file {}: {n} memberships, the manifest says {}",
                    file.display(),
                    split.count
                )),
                Ok(_) => {}
                Err(e) => check.problems.push(format!("{e:#}")),
            },
            Ok(_) => {}
            Err(e) => check
                .problems
                .push(format!("members file {}: {e:#}", file.display())),
        }
    }
    if !check.records_read {
        check.users = Some(manifest.user_count);
    } else if let Some(n) = check.users
        && n != manifest.user_count
    {
        check.problems.push(format!(
            "{n} users in the file, the manifest says {}",
            manifest.user_count
        ));
    }
    Ok((check, Some(manifest)))
}
