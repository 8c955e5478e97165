//! Reads: pools, users (one page at a time), groups and their members, single users.

use super::{CallError, Category, Cognito};
use crate::backup_file::{Attribute, GroupRecord, MfaOption, UserRecord};
use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, UserType};
use aws_smithy_types::DateTime;
use std::time::SystemTime;

/// Cognito's largest page for every listing cbr makes.
pub const PAGE_SIZE: i32 = 60;

#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolSummary {
    pub id: String,
    pub name: String,
}

/// What a restore or backup needs to know about a pool.
#[derive(Debug, Clone)]
pub struct PoolInfo {
    pub id: String,
    pub name: String,
    pub estimated_users: u64,
    /// `email` and/or `phone_number` when people sign in with those instead of a username.
    pub username_attributes: Vec<String>,
    /// Names of every attribute in the pool's schema, standard and custom.
    pub schema: Vec<String>,
    /// The password policy's minimum length.
    pub min_password_length: usize,
}

/// One page of ListUsers.
pub enum Page {
    Users {
        users: Vec<UserRecord>,
        next: Option<String>,
    },
    /// The page token has expired (they last about an hour): list the prefix again.
    TokenExpired,
}

/// A group member, as ListUsersInGroup returns it.
pub struct Member {
    pub username: String,
    pub sub: Option<String>,
}

impl Cognito {
    pub async fn list_pools(&self) -> Result<Vec<PoolSummary>> {
        let mut pools = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(Category::UserPoolRead, || {
                    self.client
                        .list_user_pools()
                        .max_results(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .context("listing user pools")?;
            pools.extend(out.user_pools().iter().map(|p| PoolSummary {
                id: p.id().unwrap_or_default().to_string(),
                name: p.name().unwrap_or_default().to_string(),
            }));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(pools);
            }
        }
    }

    pub async fn describe_pool(&self, pool_id: &str) -> Result<PoolInfo> {
        let out = self
            .call(Category::UserPoolRead, || {
                self.client
                    .describe_user_pool()
                    .user_pool_id(pool_id)
                    .send()
            })
            .await
            .with_context(|| format!("describing user pool {pool_id}"))?;
        let pool = out
            .user_pool()
            .with_context(|| format!("describing user pool {pool_id}: empty answer"))?;
        Ok(PoolInfo {
            id: pool_id.to_string(),
            name: pool.name().unwrap_or_default().to_string(),
            estimated_users: pool.estimated_number_of_users().max(0) as u64,
            username_attributes: pool
                .username_attributes()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            schema: pool
                .schema_attributes()
                .iter()
                .filter_map(|a| a.name().map(str::to_string))
                .collect(),
            min_password_length: pool
                .policies()
                .and_then(|p| p.password_policy())
                .and_then(|p| p.minimum_length())
                .unwrap_or(8)
                .max(0) as usize,
        })
    }

    /// One page of the users whose `sub` starts with `prefix` (all users for `""`).
    pub async fn list_users_page(
        &self,
        pool_id: &str,
        prefix: &str,
        token: Option<&str>,
    ) -> Result<Page, CallError> {
        let filter = (!prefix.is_empty()).then(|| format!("sub ^= \"{prefix}\""));
        let result = self
            .call(Category::UserList, || {
                self.client
                    .list_users()
                    .user_pool_id(pool_id)
                    .limit(PAGE_SIZE)
                    .set_filter(filter.clone())
                    .set_pagination_token(token.map(str::to_string))
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(Page::Users {
                users: out.users().iter().map(user_record).collect(),
                next: out.pagination_token().map(str::to_string),
            }),
            Err(e) if token.is_some() && is_expired_token(&e) => Ok(Page::TokenExpired),
            Err(e) => Err(e),
        }
    }

    pub async fn list_groups(&self, pool_id: &str) -> Result<Vec<GroupRecord>> {
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(Category::UserPoolResourceRead, || {
                    self.client
                        .list_groups()
                        .user_pool_id(pool_id)
                        .limit(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .with_context(|| format!("listing the groups of {pool_id}"))?;
            groups.extend(out.groups().iter().map(|g| GroupRecord {
                name: g.group_name().unwrap_or_default().to_string(),
                description: g.description().map(str::to_string),
                precedence: g.precedence(),
                role_arn: g.role_arn().map(str::to_string),
            }));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(groups);
            }
        }
    }

    /// Calls `each` with every member of a group, a page at a time; stops at its first error.
    pub async fn for_each_member(
        &self,
        pool_id: &str,
        group: &str,
        mut each: impl FnMut(Member) -> Result<()>,
    ) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let out = self
                .call(Category::UserList, || {
                    self.client
                        .list_users_in_group()
                        .user_pool_id(pool_id)
                        .group_name(group)
                        .limit(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .with_context(|| format!("listing the members of group {group:?} of {pool_id}"))?;
            for user in out.users() {
                each(Member {
                    username: user.username().unwrap_or_default().to_string(),
                    sub: attribute(user.attributes(), "sub"),
                })?;
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// A user's current `sub`, status and enabled flag; `None` if there is no such user.
    pub async fn get_user(
        &self,
        pool_id: &str,
        username: &str,
    ) -> Result<Option<UserState>, CallError> {
        let result = self
            .call(Category::UserRead, || {
                self.client
                    .admin_get_user()
                    .user_pool_id(pool_id)
                    .username(username)
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(Some(UserState {
                username: out.username().to_string(),
                sub: attribute(out.user_attributes(), "sub"),
                status: out
                    .user_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                enabled: out.enabled(),
            })),
            Err(e) if e.is("UserNotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A user as it is in the pool now.
#[derive(Debug, Clone)]
pub struct UserState {
    pub username: String,
    pub sub: Option<String>,
    pub status: String,
    pub enabled: bool,
}

/// Cognito answers an expired page token with InvalidParameterException naming the token.
fn is_expired_token(e: &CallError) -> bool {
    e.is("InvalidParameterException") && e.message.to_ascii_lowercase().contains("token")
}

pub(super) fn attribute(attributes: &[AttributeType], name: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value().map(str::to_string))
}

/// The SDK's user → cbr's record, dates as RFC 3339 UTC with milliseconds.
pub(super) fn user_record(user: &UserType) -> UserRecord {
    let mfa: Vec<MfaOption> = user
        .mfa_options()
        .iter()
        .map(|m| MfaOption {
            attribute_name: m.attribute_name().map(str::to_string),
            delivery_medium: m.delivery_medium().map(|d| d.as_str().to_string()),
        })
        .collect();
    UserRecord {
        attributes: user
            .attributes()
            .iter()
            .map(|a| Attribute {
                name: a.name().to_string(),
                value: a.value().map(str::to_string),
            })
            .collect(),
        enabled: user.enabled(),
        mfa_options: (!mfa.is_empty()).then_some(mfa),
        user_create_date: user.user_create_date().and_then(rfc3339_millis),
        user_last_modified_date: user.user_last_modified_date().and_then(rfc3339_millis),
        user_status: user.user_status().map(|s| s.as_str().to_string()),
        username: user.username().unwrap_or_default().to_string(),
        groups: None,
    }
}

/// Cognito sends dates as epoch seconds with milliseconds (`1795731297.05`), which the SDK
/// parses as an `f64`: `.05` arrives as `.04999995…`. The nearest millisecond is the one Cognito
/// sent (a float this size is off by well under a microsecond), so round, never truncate.
fn rfc3339_millis(dt: &DateTime) -> Option<String> {
    let millis = i64::from((dt.subsec_nanos() + 500_000) / 1_000_000);
    let exact = DateTime::from_millis(dt.secs().checked_mul(1000)?.checked_add(millis)?);
    let time = SystemTime::try_from(exact).ok()?;
    Some(humantime::format_rfc3339_millis(time).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_with_milliseconds() {
        let dt = DateTime::from_millis(1_704_164_645_678);
        assert_eq!(
            rfc3339_millis(&dt).unwrap(),
            "2024-01-02T03:04:05.678Z".to_string()
        );
        let whole = DateTime::from_secs(1_704_164_645);
        assert_eq!(rfc3339_millis(&whole).unwrap(), "2024-01-02T03:04:05.000Z");
    }

    /// The SDK turns ListUsers' `1795731297.05` into a `DateTime` with `from_secs_f64`; the
    /// backup must carry `.050`, not the `.049` a truncation gives.
    #[test]
    fn epoch_seconds_floats_keep_the_millisecond_cognito_sent() {
        let dt = DateTime::from_secs_f64(1795731297.05);
        assert!(dt.subsec_nanos() < 50_000_000, "not exact in binary");
        assert_eq!(rfc3339_millis(&dt).unwrap(), "2026-11-26T22:14:57.050Z");
        // Every millisecond of a second, as Cognito would write it in the JSON text.
        for secs in [1_704_164_645_i64, 1_795_731_297, 4_102_444_799] {
            for ms in 0..1000 {
                let text = format!("{secs}.{ms:03}");
                let dt = DateTime::from_secs_f64(text.parse().unwrap());
                let want = humantime::format_rfc3339_millis(
                    SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_millis((secs * 1000 + ms) as u64),
                )
                .to_string();
                assert_eq!(rfc3339_millis(&dt).unwrap(), want, "{text}");
            }
        }
        // Rounding up to the next second carries over.
        let dt = DateTime::from_fractional_secs(1_704_164_645, 0.9999999);
        assert_eq!(rfc3339_millis(&dt).unwrap(), "2024-01-02T03:04:06.000Z");
    }
}
