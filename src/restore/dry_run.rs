//! The dry run's printer: the plan on stdout, one line per user that is not already as in the
//! backup (or JSON for review in CI), and the report filled with what would be done.

use super::decide::Action;
use super::plan_file::for_each_step;
use super::report::{self, Report};
use super::{Options, decide};
use anyhow::Result;
use std::io::Write;

/// Prints the plan on stdout (one line per user that is not already as in the backup, or JSON)
/// and fills the report with what would be done.
pub fn print(
    opts: &Options,
    plan_file: super::plan_file::Plan,
    report: &mut Report,
    new_groups: &[&str],
    triggers: &[String],
) -> Result<()> {
    #[derive(serde::Serialize)]
    struct PlannedUser<'a> {
        username: &'a str,
        action: Action,
        fields: Vec<String>,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        not_updated: &'a [String],
        #[serde(skip_serializing_if = "<[report::Withheld]>::is_empty")]
        withheld: &'a [report::Withheld],
    }
    let json = opts.plan_json;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        write!(
            out,
            "{{\"pool_id\":{},\"new_groups\":{},\"users\":[",
            serde_json::to_string(&opts.pool_id)?,
            serde_json::to_string(new_groups)?
        )?;
    } else {
        writeln!(out, "would restore into {}:", opts.pool_id)?;
        for g in new_groups {
            writeln!(out, "  create group {g}")?;
        }
    }
    let mut first = true;
    for_each_step(plan_file, |step| {
        let fields = match step.action {
            Action::Create | Action::Unchanged | Action::SkipFederated => vec![],
            _ => step.apply.fields(),
        };
        match step.action {
            Action::Create => {
                report.created += 1;
                let wants = decide::wants_permanent_password(&step.user, opts.password_mode);
                report.confirmed_with_random_password += u64::from(wants);
                report.disabled += u64::from(!step.user.enabled);
                report.memberships_added += step.user.groups().len() as u64;
            }
            Action::Unchanged => report.unchanged += 1,
            Action::Update => {
                report.users_updated += 1;
                for f in &fields {
                    *report.updated.entry(f.clone()).or_default() += 1;
                }
                let d = &step.apply;
                report.confirmed_with_random_password += u64::from(d.status.is_some());
                report.disabled += u64::from(d.enabled == Some(false));
                report.enabled += u64::from(d.enabled == Some(true));
                report.memberships_added += d.add_groups.len() as u64;
                report.memberships_removed += d.remove_groups.len() as u64;
            }
            Action::Conflict => report.conflicts.push(report::Difference {
                username: step.user.username.clone(),
                fields: fields.clone(),
            }),
            Action::Differs | Action::SkipFederated => {}
        }
        if !step.not_applied.is_empty() {
            report.note_not_updated(&step.user.username, step.not_applied.clone());
        }
        report.withheld.extend(step.withheld.iter().cloned());
        if step.action == Action::Unchanged {
            return Ok(());
        }
        if json {
            if !first {
                out.write_all(b",")?;
            }
            first = false;
            serde_json::to_writer(
                &mut out,
                &PlannedUser {
                    username: &step.user.username,
                    action: step.action,
                    fields,
                    not_updated: &step.not_applied,
                    withheld: &step.withheld,
                },
            )?;
        } else {
            let what = match step.action {
                Action::Create => "create",
                Action::Update => "update",
                Action::Differs => "differs",
                Action::Conflict => "conflict",
                Action::SkipFederated => "skip (federated)",
                Action::Unchanged => "unchanged",
            };
            let mut detail: Vec<String> = fields;
            detail.extend(
                step.not_applied
                    .iter()
                    .map(|f| format!("{f} (not updated)")),
            );
            detail.extend(
                step.withheld
                    .iter()
                    .map(|w| format!("{} (withheld)", w.field)),
            );
            if detail.is_empty() {
                writeln!(out, "  {what} {}", step.user.username)?;
            } else {
                writeln!(
                    out,
                    "  {what} {}: {}",
                    step.user.username,
                    detail.join(", ")
                )?;
            }
        }
        Ok(())
    })?;
    if json {
        write!(
            out,
            "],\"triggers\":{},\"summary\":{}}}",
            serde_json::to_string(triggers)?,
            serde_json::to_string(&*report)?
        )?;
        writeln!(out)?;
    } else if !triggers.is_empty() {
        writeln!(
            out,
            "  Lambda triggers the creations would run: {} (needs --allow-triggers)",
            triggers.join(", ")
        )?;
    }
    out.flush()?;
    Ok(())
}
