//! Restore's writes: the groups the pool lacks, then each step of the plan carried out by a pool
//! of workers, users concurrently, every Cognito call under its own quota category's limiter (so creation, passwords and updates overlap). Only
//! the calls a step needs are sent; a user found to exist when it was to be created (another
//! client, or a retry whose first answer was lost) is looked up and planned again, never
//! assumed to be the backup's user.

use super::decide::{Action, Rules, Step, plan_user, wants_permanent_password};
use super::report::{Difference, Failure, Report};
use super::target::{find_by_key, lookup_filter, with_groups};
use super::{
    InvitationMedium, Options, checks, interrupted_before_writing, missing_groups, sub_map,
};
use crate::backup_file::UserRecord;
use crate::cognito::{Cognito, CreateOutcome, Invitation, PoolInfo};
use crate::compare::{UserDiff, is_writable};
use crate::progress::Progress;
use anyhow::{Context, Result, anyhow};
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Everything the workers share.
pub struct Worker {
    pub cognito: Cognito,
    pub pool: PoolInfo,
    pub rules: Rules,
    pub invitations: Option<InvitationMedium>,
    pub report: Mutex<Report>,
    pub sub_map: Mutex<super::sub_map::Writer>,
    pub progress: Progress,
}

impl Worker {
    /// Carries out one step; every outcome, failures included, ends in the report.
    pub async fn run(&self, step: Step) {
        let username = step.user.username.clone();
        let new_user = !step.continues;
        if let Err(e) = self.run_step(step).await {
            self.report().failed.push(Failure {
                username,
                reason: format!("{e:#}"),
            });
        }
        self.progress.add(u64::from(new_user));
    }

    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report.lock().expect("report lock")
    }

    async fn run_step(&self, step: Step) -> Result<()> {
        match step.action {
            Action::SkipFederated => Ok(()), // counted from the inventory
            Action::Conflict => {
                self.report().conflicts.push(Difference {
                    username: step.user.username.clone(),
                    fields: step.apply.fields(),
                });
                Ok(())
            }
            Action::Create => self.create(step).await,
            Action::Update if step.continues => {
                // The rest of a user an earlier step updated and counted.
                self.update(&step).await?;
                let mut r = self.report();
                for field in step.apply.fields() {
                    *r.updated.entry(field).or_default() += 1;
                }
                Ok(())
            }
            Action::Unchanged | Action::Differs | Action::Update => {
                self.update(&step).await?;
                let mut r = self.report();
                match step.action {
                    Action::Unchanged => r.unchanged += 1,
                    Action::Update => {
                        r.users_updated += 1;
                        for field in step.apply.fields() {
                            *r.updated.entry(field).or_default() += 1;
                        }
                    }
                    _ => {}
                }
                if !step.not_applied.is_empty() {
                    r.note_not_updated(&step.user.username, step.not_applied.clone());
                }
                r.withheld.extend(step.withheld.iter().cloned());
                drop(r);
                self.map_sub(
                    &step.user,
                    step.pool_sub.as_deref(),
                    step.pool_username.as_deref(),
                )
            }
        }
    }

    async fn create(&self, step: Step) -> Result<()> {
        let user = &step.user;
        let pool_id = self.pool.id.as_str();
        let username = sign_in_name(&self.pool, user)?;
        let attributes: Vec<(String, String)> = user
            .attributes
            .iter()
            .filter(|a| is_writable(&a.name))
            .filter_map(|a| Some((a.name.clone(), a.value.clone()?)))
            .collect();
        let invitation = self.invitation(user);
        let created = self
            .cognito
            .create_user(pool_id, &username, &attributes, invitation)
            .await
            .context("creating the user")?;
        let (new_username, new_sub) = match created {
            CreateOutcome::Created {
                username: name,
                sub,
            } => (name.unwrap_or(username), sub),
            CreateOutcome::Exists => return self.replan_existing(step).await,
        };
        // The steps after creation, as for a user found half-restored.
        let fresh = UserRecord {
            enabled: true,
            user_status: Some("FORCE_CHANGE_PASSWORD".into()),
            groups: Some(vec![]),
            ..user.clone()
        };
        let finish = plan_user(user.clone(), Some(&fresh), &self.pool, &self.rules);
        let todo = Step {
            pool_username: Some(new_username.clone()),
            ..finish
        };
        self.update(&todo).await?;
        {
            let mut r = self.report();
            r.created += 1;
            r.invited += u64::from(invitation != Invitation::NONE);
            r.lost_federated_link += u64::from(user.attribute("identities").is_some());
        }
        self.map_sub(user, new_sub.as_deref(), Some(&new_username))
    }

    /// The user exists after all: look it up (ListUsers, no per-user read) and do what the
    /// plan would have said.
    async fn replan_existing(&self, step: Step) -> Result<()> {
        if lookup_filter(&step.user, &self.pool).is_none() {
            return Err(anyhow!("the user exists, and its name cannot be looked up"));
        }
        let Some(have) = find_by_key(&self.cognito, &self.pool, &step.user).await? else {
            return Err(anyhow!(
                "Cognito says the user exists, but no user with this name is listed (an alias \
                 of another user?)"
            ));
        };
        let have = with_groups(&self.cognito, &self.pool, &step.user, have).await?;
        let again = plan_user(step.user, Some(&have), &self.pool, &self.rules);
        Box::pin(self.run_step(again)).await
    }

    /// Sends the calls a step's `apply` needs, each only if there is something to change.
    async fn update(&self, step: &Step) -> Result<()> {
        let d: &UserDiff = &step.apply;
        if d.is_empty() {
            return Ok(());
        }
        let pool_id = self.pool.id.as_str();
        let name = step
            .pool_username
            .as_deref()
            .unwrap_or(step.user.username.as_str());
        if !d.set.is_empty() {
            self.cognito
                .update_attributes(pool_id, name, &d.set)
                .await
                .context("setting attributes")?;
        }
        if !d.delete.is_empty() {
            self.cognito
                .delete_attributes(pool_id, name, &d.delete)
                .await
                .context("deleting attributes")?;
        }
        if d.status.is_some() && wants_permanent_password(&step.user, self.rules.password_mode) {
            let password = random_password(self.pool.min_password_length);
            self.cognito
                .set_password(pool_id, name, &password, true)
                .await
                .context("setting a random permanent password")?;
            self.report().confirmed_with_random_password += 1;
        }
        match d.enabled {
            Some(false) => {
                self.cognito
                    .disable_user(pool_id, name)
                    .await
                    .context("disabling the user")?;
                self.report().disabled += 1;
            }
            Some(true) => {
                self.cognito
                    .enable_user(pool_id, name)
                    .await
                    .context("enabling the user")?;
                self.report().enabled += 1;
            }
            None => {}
        }
        for group in &d.add_groups {
            self.cognito
                .add_to_group(pool_id, name, group)
                .await
                .with_context(|| format!("adding the user to group {group:?}"))?;
            self.report().memberships_added += 1;
        }
        for group in &d.remove_groups {
            self.cognito
                .remove_from_group(pool_id, name, group)
                .await
                .with_context(|| format!("removing the user from group {group:?}"))?;
            self.report().memberships_removed += 1;
        }
        Ok(())
    }

    /// How this user is invited, if invitations were asked for: by the chosen medium, where
    /// the user has the attribute it needs.
    fn invitation(&self, user: &UserRecord) -> Invitation {
        let Some(medium) = self.invitations else {
            return Invitation::NONE;
        };
        let email = user.attribute("email").is_some();
        let sms = user.attribute("phone_number").is_some();
        match medium {
            InvitationMedium::Email => Invitation { email, sms: false },
            InvitationMedium::Sms => Invitation { email: false, sms },
            InvitationMedium::Both => Invitation { email, sms },
        }
    }

    fn map_sub(
        &self,
        user: &UserRecord,
        new_sub: Option<&str>,
        new_username: Option<&str>,
    ) -> Result<()> {
        self.sub_map.lock().expect("sub map lock").add(
            &self.rules.sub_map,
            user,
            new_sub,
            new_username,
        )
    }
}

/// The username to create: the backup's, or in a pool where people sign in with email or phone,
/// that attribute's value (Cognito then generates the username).
pub fn sign_in_name(pool: &PoolInfo, user: &UserRecord) -> Result<String> {
    if pool.username_attributes.is_empty() {
        return Ok(user.username.clone());
    }
    pool.username_attributes
        .iter()
        .find_map(|a| user.attribute(a))
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "the pool signs in with {} and the user has none",
                pool.username_attributes.join(" or ")
            )
        })
}

/// A random password nobody ever sees: upper, lower, digits and symbols, at least 32
/// characters (more if the pool's policy asks for more).
pub fn random_password(min_length: usize) -> String {
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#$%&*+-=?@^_";
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut rng = rand::rng();
    let len = min_length.clamp(32, 99);
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| set[rng.random_range(0..set.len())])
        .collect();
    while chars.len() < len {
        chars.push(all[rng.random_range(0..all.len())]);
    }
    chars.shuffle(&mut rng);
    String::from_utf8(chars).expect("ASCII")
}

/// What the writing stage did: nothing (the reading failed, or an interruption came, before
/// the first write), or some of the plan, with the sub map written so far (not yet under its
/// name).
pub enum Written {
    Nothing(Report),
    Some {
        report: Report,
        sub_map: sub_map::Writer,
    },
}

impl Written {
    pub fn report(&self) -> &Report {
        match self {
            Written::Nothing(report) | Written::Some { report, .. } => report,
        }
    }
}

/// The writing stage: the groups the pool lacks, then every step as it arrives, carried out
/// by `concurrency` workers, until the steps end or an interruption comes.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    cognito: &Cognito,
    opts: &Options,
    pool: &PoolInfo,
    rules: Rules,
    mut report: Report,
    inv: &checks::Inventory,
    live_groups: oneshot::Receiver<BTreeSet<String>>,
    steps: mpsc::Receiver<Step>,
    interrupted: &mut (impl std::future::Future<Output = ()> + Unpin),
) -> Result<Written> {
    let live_groups = tokio::select! {
        groups = live_groups => match groups {
            Ok(groups) => groups,
            // The reading failed before the pool's groups were read.
            Err(_) => return Ok(Written::Nothing(report)),
        },
        _ = &mut *interrupted => {
            let report = interrupted_before_writing(opts)?;
            return Ok(Written::Nothing(report));
        }
    };
    let new_groups = missing_groups(inv, &live_groups);
    report.groups_already_present = (inv.groups.len() - new_groups.len()) as u64;
    for group in new_groups {
        if cognito
            .create_group(&opts.pool_id, group)
            .await
            .map_err(|e| anyhow!("creating group {:?} in {}: {e}", group.name, opts.pool_id))?
        {
            report.groups_created += 1;
        } else {
            report.groups_already_present += 1;
        }
    }

    let sub_map = sub_map::Writer::create(&opts.sub_map_path(), &opts.pool_id)?;
    report.sub_map = Some(opts.sub_map_path());
    let ctx = Arc::new(Worker {
        cognito: cognito.clone(),
        pool: pool.clone(),
        rules,
        invitations: opts.invitations,
        report: Mutex::new(report),
        sub_map: Mutex::new(sub_map),
        progress: Progress::start("restored", Some(inv.users - inv.federated), opts.progress),
    });
    let steps = Arc::new(tokio::sync::Mutex::new(steps));
    let mut workers = tokio::task::JoinSet::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    for _ in 0..opts.concurrency {
        let (ctx, steps, mut stopped) = (ctx.clone(), steps.clone(), stopped.clone());
        workers.spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    _ = stopped.changed() => None,
                    step = async { steps.lock().await.recv().await } => step,
                };
                let Some(step) = next else { return };
                ctx.run(step).await;
            }
        });
    }
    let was_interrupted = tokio::select! {
        _ = async { while workers.join_next().await.is_some() {} } => false,
        _ = &mut *interrupted => {
            tracing::warn!("interrupted: finishing the calls in flight, taking no new users");
            let _ = stop.send(true);
            while workers.join_next().await.is_some() {}
            true
        }
    };
    drop(steps);
    ctx.progress.finish();

    let ctx = Arc::try_unwrap(ctx).map_err(|_| anyhow!("restore workers still running"))?;
    let mut report = ctx.report.into_inner().expect("report lock");
    report.interrupted = was_interrupted;
    Ok(Written::Some {
        report,
        sub_map: ctx.sub_map.into_inner().expect("sub map lock"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_passwords_meet_every_policy_class() {
        for _ in 0..100 {
            let p = random_password(8);
            assert_eq!(p.len(), 32);
            assert!(p.chars().any(|c| c.is_ascii_uppercase()));
            assert!(p.chars().any(|c| c.is_ascii_lowercase()));
            assert!(p.chars().any(|c| c.is_ascii_digit()));
            assert!(p.chars().any(|c| !c.is_ascii_alphanumeric()));
        }
        assert_eq!(random_password(64).len(), 64);
        assert_ne!(random_password(8), random_password(8));
    }
}
