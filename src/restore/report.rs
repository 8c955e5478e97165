//! What a restore did and did not do: the counts and lists printed at the end (stderr) and
//! written with `--report` (JSON). Field names, never attribute values.

use crate::exit_codes::ExitCode;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Examples kept of users whose differences were left alone; the count is always complete.
const EXAMPLES: usize = 50;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub pool_id: String,
    pub dry_run: bool,
    /// Users of the backup the restore acted on (all, or the selected ones).
    pub users_in_backup: u64,
    pub created: u64,
    /// Users already in the pool as the backup has them: nothing was sent for them.
    pub unchanged: u64,
    /// Users changed to be as in the backup, and how often each field was changed.
    pub users_updated: u64,
    pub updated: BTreeMap<String, u64>,
    pub confirmed_with_random_password: u64,
    /// Calls made: users disabled and enabled, memberships added and removed.
    pub disabled: u64,
    pub enabled: u64,
    pub memberships_added: u64,
    pub memberships_removed: u64,
    /// Users invited by Cognito's message (only with `--send-invitations`).
    pub invited: u64,
    /// Same user, other state; left alone because `--update-existing` was not given.
    pub not_updated: u64,
    pub not_updated_examples: Vec<Difference>,
    /// Changes that were not made even with `--update-existing`, and why.
    pub withheld: Vec<Withheld>,
    /// A user of the same name who is not the backup's user: left exactly as it is.
    pub conflicts: Vec<Difference>,
    pub groups_created: u64,
    pub groups_already_present: u64,
    pub skipped: BTreeMap<String, u64>,
    /// Native users that had a federated identity linked; the link is not restored.
    pub lost_federated_link: u64,
    pub failed: Vec<Failure>,
    pub interrupted: bool,
    /// Reading stopped part way, after some users were restored: an input file changed after
    /// it was checked, or the target pool could not be listed to the end.
    pub input_error: Option<String>,
    /// Calls Cognito throttled, and calls retried after throttling or a transient fault.
    pub throttled_calls: u64,
    pub retried_calls: u64,
    pub sub_map: Option<PathBuf>,
}

/// A user and the names of the fields that differ.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub username: String,
    pub fields: Vec<String>,
}

/// A change that was not made: the user, the field, the reason.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Withheld {
    pub username: String,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Failure {
    pub username: String,
    pub reason: String,
}

impl Report {
    pub fn print(&self) {
        let mut out = std::io::stderr().lock();
        let _ = write!(out, "{}", self.text());
    }

    pub fn note_not_updated(&mut self, username: &str, fields: Vec<String>) {
        self.not_updated += 1;
        if self.not_updated_examples.len() < EXAMPLES {
            self.not_updated_examples.push(Difference {
                username: username.to_string(),
                fields,
            });
        }
    }

    pub fn text(&self) -> String {
        let verb = if self.dry_run { "would be " } else { "" };
        let mut lines: Vec<(String, u64)> = vec![
            (format!("{verb}created"), self.created),
            ("already as in the backup".into(), self.unchanged),
            (format!("{verb}updated"), self.users_updated),
        ];
        for (field, n) in &self.updated {
            lines.push((format!("  {field}"), *n));
        }
        lines.extend([
            (
                format!("{verb}confirmed (random password)"),
                self.confirmed_with_random_password,
            ),
            (format!("{verb}disabled"), self.disabled),
            (format!("{verb}enabled"), self.enabled),
            (format!("memberships {verb}added"), self.memberships_added),
            (
                format!("memberships {verb}removed"),
                self.memberships_removed,
            ),
            (format!("{verb}invited"), self.invited),
            (
                "differ, not updated (--update-existing)".into(),
                self.not_updated,
            ),
            ("changes withheld".into(), self.withheld.len() as u64),
            (
                "conflicts (left as they are)".into(),
                self.conflicts.len() as u64,
            ),
            (format!("groups {verb}created"), self.groups_created),
            ("groups already present".into(), self.groups_already_present),
        ]);
        for (reason, n) in &self.skipped {
            lines.push((format!("skipped: {reason}"), *n));
        }
        lines.extend([
            ("federated link lost".into(), self.lost_federated_link),
            ("failed".into(), self.failed.len() as u64),
            ("throttled calls (retried)".into(), self.throttled_calls),
        ]);
        let width = lines
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        let mut s = format!(
            "restore into {}{}: {} users in the backup\n",
            self.pool_id,
            if self.dry_run { " (dry run)" } else { "" },
            self.users_in_backup
        );
        for (label, n) in &lines {
            s.push_str(&format!("  {label:<width$}  {n}\n"));
        }
        for d in &self.not_updated_examples {
            s.push_str(&format!(
                "    differs, not updated: {} ({})\n",
                d.username,
                d.fields.join(", ")
            ));
        }
        for w in &self.withheld {
            s.push_str(&format!(
                "    withheld: {} {}: {}\n",
                w.username, w.field, w.reason
            ));
        }
        for c in &self.conflicts {
            s.push_str(&format!(
                "    conflict: {} is another user in the pool ({} differ)\n",
                c.username,
                c.fields.join(", ")
            ));
        }
        for f in &self.failed {
            s.push_str(&format!("    failed: {}: {}\n", f.username, f.reason));
        }
        if let Some(e) = &self.input_error {
            s.push_str(&format!("  reading stopped part way: {e}\n"));
        }
        if self.interrupted {
            s.push_str(
                "  interrupted: users not yet started were not restored; run again to finish\n",
            );
        }
        if let Some(path) = &self.sub_map {
            s.push_str(&format!("  sub map: {}\n", path.display()));
        }
        s
    }

    /// The exit code: interrupted, complete (or a dry run), or a person must look.
    pub fn exit_code(&self) -> ExitCode {
        if self.interrupted {
            ExitCode::Interrupted
        } else if self.dry_run || self.succeeded() {
            ExitCode::Success
        } else {
            ExitCode::Incomplete
        }
    }

    /// Whether the run sent no write at all (a failed user may have been half written).
    pub fn wrote_nothing(&self) -> bool {
        self.groups_created == 0
            && self.created == 0
            && self.users_updated == 0
            && self.failed.is_empty()
    }

    /// Everything asked for was done: no failure, no conflict, nothing withheld, not
    /// interrupted.
    pub fn succeeded(&self) -> bool {
        self.failed.is_empty()
            && self.conflicts.is_empty()
            && self.withheld.is_empty()
            && !self.interrupted
            && self.input_error.is_none()
    }
}

/// The report as JSON in `--report`'s file, if one was asked for.
pub fn write_report(opts: &super::Options, report: &Report) -> anyhow::Result<()> {
    if let Some(path) = &opts.report {
        let mut json = serde_json::to_vec_pretty(report)?;
        json.push(b'\n');
        crate::location::write_atomic(path, &json)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_exits_3_only_when_a_person_must_look() {
        let mut report = Report::default();
        assert_eq!(report.exit_code(), ExitCode::Success);
        report.withheld.push(Withheld {
            username: "a".into(),
            field: "status".into(),
            reason: "r".into(),
        });
        assert_eq!(report.exit_code(), ExitCode::Incomplete);
        report.dry_run = true;
        assert_eq!(report.exit_code(), ExitCode::Success);
        report.interrupted = true;
        assert_eq!(report.exit_code(), ExitCode::Interrupted);
    }

    #[test]
    fn labels_never_overflow_their_column() {
        let report = Report {
            dry_run: true,
            created: 3,
            confirmed_with_random_password: 12345,
            ..Report::default()
        };
        let text = report.text();
        let columns: Vec<usize> = text
            .lines()
            .skip(1)
            .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
            .map(|l| l.trim_end().rfind(' ').unwrap())
            .collect();
        assert!(columns.len() > 10, "{text}");
        assert!(columns.iter().all(|&c| c == columns[0]), "{text}");
        assert!(
            text.contains("would be confirmed (random password)  "),
            "{text}"
        );
    }
}
