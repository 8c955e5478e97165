//! The resume state on disk: written as prefixes finish, read back, refused when it is another
//! backup's, damaged spools caught, leftovers replaced.

use super::*;
use crate::backup_file::{Encoding, Spool, UserRecord, test_user};

fn identity(dir: &std::path::Path) -> Identity {
    Identity {
        pool_id: "us-east-1_Pool".into(),
        shard: None,
        output: Location::Local(dir.join("backup.json")),
        gzip: false,
        encrypted: false,
    }
}

fn prefixes() -> Vec<String> {
    (0..16).map(|i| format!("{i:x}")).collect()
}

fn spool(dir: &std::path::Path, names: &[&str]) -> Spooled {
    let mut s = Spool::new(dir).unwrap();
    for n in names {
        s.push(&test_user(n, &[("email", "x@example.org")]))
            .unwrap();
    }
    s.finish().unwrap()
}

/// The data file written from `each` prefix's spool, in order.
fn written(dir: &std::path::Path, each: impl FnOnce(&mut DataWriter)) -> Vec<UserRecord> {
    let path = dir.join("out.json");
    let mut w = DataWriter::create(&path.clone().into(), &Encoding::default()).unwrap();
    each(&mut w);
    let (file, _) = w.finish().unwrap();
    file.commit().unwrap();
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[test]
fn finished_prefixes_are_kept_and_given_back() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let state = State::create(&id, &prefixes(), "2026-01-01T00:00:00.000Z").unwrap();
    let dir = tmp.path().join(".backup.json.resume");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("state.json")), 0o600);
    let mut listed = spool(tmp.path(), &["amy", "bob"]);
    let plain = written(tmp.path(), |w| w.append(&mut listed).unwrap());
    let mut kept = state
        .keep("3", listed)
        .unwrap()
        .expect("on disk, the kept copy");
    assert_eq!(kept.count(), 2);
    state.keep("a", spool(tmp.path(), &[])).unwrap();
    assert_eq!(mode(&dir.join("prefix-3.json.gz")), 0o600);
    // The spool to append is the kept copy: the same records.
    let direct = written(tmp.path(), |w| w.append(&mut kept).unwrap());
    assert_eq!(direct.len(), 2);
    assert_eq!(direct, plain);
    // A copy fetched from the state is the same again; a prefix not kept is an error.
    let mut fetched = state.fetch_kept("3", tmp.path()).unwrap();
    assert_eq!(
        written(tmp.path(), |w| w.append(&mut fetched).unwrap()),
        plain
    );
    assert!(state.fetch_kept("4", tmp.path()).is_err());

    // A second run finds both, with the first run's start, and appends them as they were.
    let (Start::Resumed(again), true) = find(
        &id,
        true,
        state.dir(),
        &names::resume_state_file(state.dir()),
    )
    .unwrap() else {
        panic!("resumed")
    };
    assert!(again.resumed() && !state.resumed());
    assert_eq!(again.kept(), (2, 2));
    assert_eq!(again.started_at(), "2026-01-01T00:00:00.000Z");
    assert_eq!(Keeper::kept(&*again, "3"), Some(2));
    assert_eq!(Keeper::kept(&*again, "a"), Some(0));
    assert_eq!(Keeper::kept(&*again, "4"), None);
    let resumed = written(tmp.path(), |w| {
        again.append_kept("3", w).unwrap();
        again.append_kept("a", w).unwrap();
    });
    assert_eq!(resumed, direct);

    again.remove().unwrap();
    assert!(!dir.exists());
    // Removed, a state keeps nothing more: the spool is appended as it is.
    let spool = again.keep("5", spool(tmp.path(), &["kim"])).unwrap();
    assert_eq!(spool.map(|s| s.count()), Some(1));
    assert!(!dir.exists());
}

#[test]
fn a_damaged_or_missing_spool_is_never_taken_for_the_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let state = State::create(&id, &prefixes(), "t").unwrap();
    state.keep("1", spool(tmp.path(), &["amy"])).unwrap();
    state.keep("2", spool(tmp.path(), &["bob"])).unwrap();
    let dir = tmp.path().join(".backup.json.resume");
    // Prefix 1: the same size, other bytes. Prefix 2: gone.
    let path = dir.join("prefix-1.json.gz");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    std::fs::remove_file(dir.join("prefix-2.json.gz")).unwrap();

    let Start::Resumed(again) = open(&id, true).unwrap() else {
        panic!("resumed")
    };
    assert_eq!(
        Keeper::kept(&*again, "2"),
        None,
        "a missing spool is listed again"
    );
    let out = tmp.path().join("out.json");
    let mut w = DataWriter::create(&out.into(), &Encoding::default()).unwrap();
    let err = again.append_kept("1", &mut w).unwrap_err();
    assert!(format!("{err:#}").contains("prefix-1.json.gz"), "{err:#}");
    // Listed again, prefix 2 is named once.
    again.keep("2", spool(tmp.path(), &["bob"])).unwrap();
    let file = read(&names::resume_state_file(again.dir())).unwrap();
    let named: Vec<&str> = file.finished.iter().map(|f| f.prefix.as_str()).collect();
    assert_eq!(named, ["1", "2"]);
}

#[test]
fn a_state_of_another_backup_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    State::create(&id, &prefixes(), "t").unwrap();
    let reason = |change: &dyn Fn(&mut Identity)| {
        let mut other = identity(tmp.path());
        change(&mut other);
        match open(&other, true) {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("accepted"),
        }
    };
    let err = reason(&|i| i.pool_id = "us-east-1_Other".into());
    assert!(
        err.contains("it is a backup of pool us-east-1_Pool, not us-east-1_Other"),
        "{err}"
    );
    assert!(err.contains("nothing was listed"), "{err}");
    assert!(err.contains("without --resume"), "{err}");
    let err = reason(&|i| i.shard = Some("1/2".parse().unwrap()));
    assert!(
        err.contains("a backup of the whole pool, not shard 1/2"),
        "{err}"
    );
    let err = reason(&|i| i.encrypted = true);
    assert!(
        err.contains("not encrypted, this one encrypted (age)"),
        "{err}"
    );

    // Edited: another version, another output, prefixes that do not tile the pool.
    let path = tmp.path().join(".backup.json.resume/state.json");
    let edit = |f: &dyn Fn(&mut StateFile)| {
        let mut file: StateFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut file);
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
    };
    edit(&|f| f.cbr_version = "0.0.1".into());
    assert!(reason(&|_| {}).contains("it was made by cbr 0.0.1"));
    edit(&|f| {
        f.cbr_version = env!("CARGO_PKG_VERSION").into();
        f.output = "elsewhere.json".into();
    });
    assert!(reason(&|_| {}).contains("it writes elsewhere.json"));
    edit(&|f| {
        f.output = tmp.path().join("backup.json").display().to_string();
        f.prefixes.pop();
    });
    assert!(reason(&|_| {}).contains("its prefixes do not cover the whole pool"));
    edit(&|f| f.state_version = 3);
    assert!(reason(&|_| {}).contains("its layout is version 3"));
    // Refused, the state is left as it was.
    assert!(path.exists());
}

#[test]
fn without_resume_a_leftover_state_is_removed_with_a_killed_runs_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let state = State::create(&id, &prefixes(), "t").unwrap();
    state.keep("1", spool(tmp.path(), &["amy"])).unwrap();
    let killed = tmp.path().join(".backup.json.abc123.tmp");
    std::fs::write(&killed, b"[").unwrap();
    assert!(matches!(open(&id, false).unwrap(), Start::New));
    assert!(!tmp.path().join(".backup.json.resume").exists());
    assert!(!killed.exists());
    // Nothing there: a new backup, with or without --resume.
    assert!(matches!(open(&id, false).unwrap(), Start::New));
    assert!(matches!(open(&id, true).unwrap(), Start::New));
}

#[test]
fn a_failed_backup_keeps_its_state_only_if_it_kept_a_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let id = identity(tmp.path());
    let state = State::create(&id, &prefixes(), "t").unwrap();
    let err = state.stopped(anyhow::anyhow!("listing failed"));
    assert_eq!(format!("{err:#}"), "listing failed");
    assert!(
        !tmp.path().join(".backup.json.resume").exists(),
        "nothing to go on from"
    );

    let state = State::create(&id, &prefixes(), "t").unwrap();
    state.keep("1", spool(tmp.path(), &["amy"])).unwrap();
    let err = format!("{:#}", state.stopped(anyhow::anyhow!("listing failed")));
    assert!(err.contains("1 of 16 prefixes listed and kept in"), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(err.ends_with("listing failed"), "{err}");
    assert!(tmp.path().join(".backup.json.resume/state.json").exists());
}

/// A local output's data file is kept in the state: a prefix appended to it leaves no copy
/// behind, and a resumed run cuts the file where the state says and goes on to the file an
/// uninterrupted run writes.
#[test]
fn a_local_data_file_is_kept_in_the_state_and_continued() {
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity {
        output: Location::Local(tmp.path().join("backup.json.gz")),
        gzip: true,
        ..identity(tmp.path())
    };
    let encoding = Encoding::new(std::path::Path::new("backup.json.gz"), vec![]);
    let partial = partial_file(&id).expect("local, not encrypted");
    let dir = tmp.path().join(".backup.json.gz.resume");
    assert_eq!(partial, dir.join("backup.json.gz.partial"));
    let encrypted = Identity {
        encrypted: true,
        ..identity(tmp.path())
    };
    assert_eq!(partial_file(&encrypted), None);
    let users: [&[&str]; 3] = [&["amy", "bob"], &["kim"], &["zed"]];

    // Uninterrupted.
    let whole = tmp.path().join("whole.json.gz");
    let mut w = DataWriter::create(&whole.clone().into(), &encoding).unwrap();
    for u in users {
        w.append(&mut spool(tmp.path(), u)).unwrap();
    }
    w.finish().unwrap().0.commit().unwrap();

    // Prefix 0 is appended, prefix 2 finishes out of order, then the run is killed.
    let state = State::create(&id, &prefixes(), "t").unwrap();
    let mut w = DataWriter::create_partial(&id.output, &partial, &encoding).unwrap();
    let mut kept = state
        .keep("0", spool(tmp.path(), users[0]))
        .unwrap()
        .unwrap();
    state.keep("2", spool(tmp.path(), users[2])).unwrap();
    w.append(&mut kept).unwrap();
    state.appended("0", &mut w).unwrap();
    assert!(
        !dir.join("prefix-0.json.gz").exists(),
        "no copy of prefix 0"
    );
    assert!(dir.join("prefix-2.json.gz").exists());
    let saved = read(&names::resume_state_file(state.dir())).unwrap();
    let data = saved.data.clone().unwrap();
    assert_eq!(data.bytes, std::fs::metadata(&partial).unwrap().len());
    assert_eq!(data.appended[0].users, 2);
    assert_eq!(
        saved.finished.iter().map(|f| &f.prefix).collect::<Vec<_>>(),
        ["2"]
    );
    w.append(&mut spool(tmp.path(), users[1])).unwrap();
    drop(w);

    let Start::Resumed(again) = open(&id, true).unwrap() else {
        panic!("resumed")
    };
    assert_eq!(again.kept(), (2, 3));
    assert_eq!(again.data_file_end(), Some((data.bytes, 2)));
    assert_eq!(Keeper::kept(&*again, "0"), Some(2));
    assert_eq!(Keeper::kept(&*again, "1"), None);
    let mut w = DataWriter::resume(&id.output, &partial, data.bytes, 2, &encoding).unwrap();
    again.append_kept("0", &mut w).unwrap();
    again.appended("0", &mut w).unwrap();
    w.append(&mut spool(tmp.path(), users[1])).unwrap();
    again.appended("1", &mut w).unwrap();
    again.append_kept("2", &mut w).unwrap();
    again.appended("2", &mut w).unwrap();
    let names_of = |file: &StateFile| -> Vec<String> {
        let data = file.data.as_ref().unwrap();
        data.appended.iter().map(|a| a.prefix.clone()).collect()
    };
    let saved = read(&names::resume_state_file(again.dir())).unwrap();
    assert_eq!(names_of(&saved), ["0", "1", "2"]);
    assert!(saved.finished.is_empty());
    assert!(!dir.join("prefix-2.json.gz").exists());
    let (file, written) = w.finish().unwrap();
    file.commit().unwrap();
    assert_eq!(written.count, 4);
    assert!(
        std::fs::read(id.output.as_local().unwrap()).unwrap() == std::fs::read(&whole).unwrap()
    );
    again.remove().unwrap();
    assert!(!dir.exists());

    // A state whose partial file is gone lists its prefixes again.
    let state = State::create(&id, &prefixes(), "t").unwrap();
    let mut w = DataWriter::create_partial(&id.output, &partial, &encoding).unwrap();
    w.append(&mut spool(tmp.path(), users[0])).unwrap();
    state.appended("0", &mut w).unwrap();
    drop(w);
    std::fs::remove_file(&partial).unwrap();
    let Start::Resumed(again) = open(&id, true).unwrap() else {
        panic!("resumed")
    };
    assert_eq!(again.kept(), (0, 0));
    assert_eq!(again.data_file_end(), None);
}
