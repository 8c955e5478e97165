//! Reads: pools, users (one page at a time), groups and their members, single users.

use super::{CallError, Category, Cognito, for_each_page};
use crate::backup_file::{Attribute, GroupRecord, MfaOption, UserRecord};
use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, LimitClass, LimitDefinitionType, SchemaAttributeType, UserType,
};
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
#[derive(Debug, Clone, Default)]
pub struct PoolInfo {
    pub id: String,
    pub name: String,
    pub estimated_users: u64,
    /// `email` and/or `phone_number` when people sign in with those instead of a username.
    pub username_attributes: Vec<String>,
    /// Every attribute in the pool's schema, standard and custom.
    pub schema: Vec<SchemaAttribute>,
    /// The password policy's minimum length.
    pub min_password_length: usize,
    /// Whether `Alice` and `alice` are two users (false: one, found by either spelling).
    pub case_sensitive: bool,
    /// `email`, `phone_number` and/or `preferred_username`: other names a user may sign in
    /// with once verified (each value belongs to one user).
    pub alias_attributes: Vec<String>,
    /// Lambda triggers that are set, by Cognito's name (`PreSignUp`, `CustomMessage`, ...).
    pub triggers: Vec<String>,
}

/// One attribute of a pool's schema, with the constraints values must meet.
#[derive(Debug, Clone, Default)]
pub struct SchemaAttribute {
    /// As it appears on users: `email`, `custom:plan`, `dev:custom:score`.
    pub name: String,
    /// `String`, `Number`, `DateTime` or `Boolean`.
    pub data_type: String,
    pub developer_only: bool,
    pub mutable: bool,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_value: Option<i64>,
    pub max_value: Option<i64>,
}

impl SchemaAttribute {
    fn from_sdk(a: &SchemaAttributeType) -> SchemaAttribute {
        let raw = a.name().unwrap_or_default();
        let standard = matches!(
            raw,
            "sub"
                | "name"
                | "given_name"
                | "family_name"
                | "middle_name"
                | "nickname"
                | "preferred_username"
                | "profile"
                | "picture"
                | "website"
                | "email"
                | "email_verified"
                | "gender"
                | "birthdate"
                | "zoneinfo"
                | "locale"
                | "phone_number"
                | "phone_number_verified"
                | "address"
                | "updated_at"
                | "identities"
        );
        let developer_only = a.developer_only_attribute().unwrap_or(false);
        // DescribeUserPool names custom attributes with or without their prefix.
        let bare = raw
            .strip_prefix("dev:custom:")
            .or_else(|| raw.strip_prefix("custom:"))
            .unwrap_or(raw);
        let name = if standard {
            raw.to_string()
        } else if developer_only {
            format!("dev:custom:{bare}")
        } else {
            format!("custom:{bare}")
        };
        fn num<T: std::str::FromStr>(v: Option<&str>) -> Option<T> {
            v.and_then(|v| v.parse().ok())
        }
        let strings = a.string_attribute_constraints();
        let numbers = a.number_attribute_constraints();
        SchemaAttribute {
            name,
            data_type: a
                .attribute_data_type()
                .map_or("String", |t| t.as_str())
                .to_string(),
            developer_only,
            mutable: a.mutable().unwrap_or(true),
            min_length: num(strings.and_then(|c| c.min_length())),
            max_length: num(strings.and_then(|c| c.max_length())),
            min_value: num(numbers.and_then(|c| c.min_value())),
            max_value: num(numbers.and_then(|c| c.max_value())),
        }
    }
}

impl PoolInfo {
    pub fn schema_attribute(&self, name: &str) -> Option<&SchemaAttribute> {
        self.schema.iter().find(|a| a.name == name)
    }
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
        for_each_page(
            |token| async move {
                self.call(Category::UserPoolRead, || {
                    self.client
                        .list_user_pools()
                        .max_results(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .context("listing user pools")
            },
            |out| {
                pools.extend(out.user_pools().iter().map(|p| PoolSummary {
                    id: p.id().unwrap_or_default().to_string(),
                    name: p.name().unwrap_or_default().to_string(),
                }));
                Ok(out.next_token().map(str::to_string))
            },
        )
        .await?;
        Ok(pools)
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
                .map(SchemaAttribute::from_sdk)
                .collect(),
            case_sensitive: pool
                .username_configuration()
                .is_none_or(|c| c.case_sensitive()),
            alias_attributes: pool
                .alias_attributes()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            triggers: pool.lambda_config().map(triggers).unwrap_or_default(),
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
        self.list_users_filtered(pool_id, filter, token).await
    }

    /// Every user a ListUsers filter (`username = "alice"`) selects, a few at most. An expired
    /// page token starts the lookup over from its first page.
    pub async fn find_users(&self, pool_id: &str, filter: String) -> Result<Vec<UserRecord>> {
        loop {
            let mut users = Vec::new();
            let mut expired = false;
            for_each_page(
                |token: Option<String>| {
                    let filter = Some(filter.clone());
                    async move {
                        self.list_users_filtered(pool_id, filter, token.as_deref())
                            .await
                            .with_context(|| format!("looking up users of {pool_id}"))
                    }
                },
                |page| match page {
                    Page::Users { users: found, next } => {
                        users.extend(found);
                        Ok(next)
                    }
                    Page::TokenExpired => {
                        expired = true;
                        Ok(None)
                    }
                },
            )
            .await?;
            if !expired {
                return Ok(users);
            }
        }
    }

    /// The names of the groups a user belongs to (AdminListGroupsForUser).
    pub async fn groups_of_user(&self, pool_id: &str, username: &str) -> Result<Vec<String>> {
        let mut groups = Vec::new();
        for_each_page(
            |token| async move {
                self.call(Category::UserResourceRead, || {
                    self.client
                        .admin_list_groups_for_user()
                        .user_pool_id(pool_id)
                        .username(username)
                        .limit(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .with_context(|| format!("listing the groups of a user of {pool_id}"))
            },
            |out| {
                groups.extend(
                    out.groups()
                        .iter()
                        .filter_map(|g| g.group_name())
                        .map(str::to_string),
                );
                Ok(out.next_token().map(str::to_string))
            },
        )
        .await?;
        groups.sort();
        Ok(groups)
    }

    /// The rate Cognito enforces for a category (GetProvisionedLimit), requests per second.
    pub(super) async fn provisioned_limit(
        &self,
        category: Category,
    ) -> Result<Option<f64>, CallError> {
        let definition = LimitDefinitionType::builder()
            .limit_class(LimitClass::ApiCategory)
            .attributes("Category", category.name())
            .build()
            .expect("limit class and attributes are set");
        // One attempt: an endpoint without the operation answers 5xx, and waiting for it
        // would only delay the work; the default quotas are a safe answer.
        let out = self
            .call_with(Category::UserPoolRead, &self.limit_reads, 1, || {
                self.client
                    .get_provisioned_limit()
                    .limit_definition(definition.clone())
                    .send()
            })
            .await?;
        Ok(out
            .limit()
            .map(|l| f64::from(l.provisioned_limit_value()))
            .filter(|&v| v > 0.0))
    }

    async fn list_users_filtered(
        &self,
        pool_id: &str,
        filter: Option<String>,
        token: Option<&str>,
    ) -> Result<Page, CallError> {
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
        for_each_page(
            |token| async move {
                self.group_ops.acquire().await;
                self.call(Category::UserPoolResourceRead, || {
                    self.client
                        .list_groups()
                        .user_pool_id(pool_id)
                        .limit(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .with_context(|| format!("listing the groups of {pool_id}"))
            },
            |out| {
                groups.extend(out.groups().iter().map(|g| GroupRecord {
                    name: g.group_name().unwrap_or_default().to_string(),
                    description: g.description().map(str::to_string),
                    precedence: g.precedence(),
                    role_arn: g.role_arn().map(str::to_string),
                }));
                Ok(out.next_token().map(str::to_string))
            },
        )
        .await?;
        Ok(groups)
    }

    /// Calls `each` with every member of a group, a page at a time; stops at its first error.
    pub async fn for_each_member(
        &self,
        pool_id: &str,
        group: &str,
        mut each: impl FnMut(Member) -> Result<()>,
    ) -> Result<()> {
        for_each_page(
            |token| async move {
                self.call(Category::UserList, || {
                    self.client
                        .list_users_in_group()
                        .user_pool_id(pool_id)
                        .group_name(group)
                        .limit(PAGE_SIZE)
                        .set_next_token(token.clone())
                        .send()
                })
                .await
                .with_context(|| format!("listing the members of group {group:?} of {pool_id}"))
            },
            |out| {
                for user in out.users() {
                    each(Member {
                        username: user.username().unwrap_or_default().to_string(),
                        sub: attribute(user.attributes(), "sub"),
                    })?;
                }
                Ok(out.next_token().map(str::to_string))
            },
        )
        .await
    }
}

/// The names of the Lambda triggers a pool has set.
fn triggers(c: &aws_sdk_cognitoidentityprovider::types::LambdaConfigType) -> Vec<String> {
    [
        ("PreSignUp", c.pre_sign_up().is_some()),
        ("CustomMessage", c.custom_message().is_some()),
        ("PostConfirmation", c.post_confirmation().is_some()),
        ("PreAuthentication", c.pre_authentication().is_some()),
        ("PostAuthentication", c.post_authentication().is_some()),
        ("DefineAuthChallenge", c.define_auth_challenge().is_some()),
        ("CreateAuthChallenge", c.create_auth_challenge().is_some()),
        (
            "VerifyAuthChallengeResponse",
            c.verify_auth_challenge_response().is_some(),
        ),
        (
            "PreTokenGeneration",
            c.pre_token_generation().is_some() || c.pre_token_generation_config().is_some(),
        ),
        ("UserMigration", c.user_migration().is_some()),
        ("CustomSMSSender", c.custom_sms_sender().is_some()),
        ("CustomEmailSender", c.custom_email_sender().is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| name.to_string())
    .collect()
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
