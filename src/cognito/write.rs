//! Writes: create users and groups, set passwords, disable users, add memberships. Each one
//! reports "already there" as an outcome, not an error, so a restore can run twice.

use super::read::attribute;
use super::{CallError, Category, Cognito};
use crate::backup_file::GroupRecord;
use aws_sdk_cognitoidentityprovider::types::{AttributeType, MessageActionType};

/// What AdminCreateUser did.
#[derive(Debug)]
pub enum CreateOutcome {
    /// Created; the new user's `sub`.
    Created { sub: Option<String> },
    /// A user with this username (or alias) exists already.
    Exists,
}

impl Cognito {
    /// Creates a user with the given attributes. With `invite` false, Cognito sends nothing
    /// (`MessageAction=SUPPRESS`); otherwise it sends its usual invitation.
    pub async fn create_user(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &[(String, String)],
        invite: bool,
    ) -> Result<CreateOutcome, CallError> {
        let attrs: Vec<AttributeType> = attributes
            .iter()
            .map(|(name, value)| {
                AttributeType::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .expect("name is set")
            })
            .collect();
        let action = (!invite).then_some(MessageActionType::Suppress);
        let result = self
            .call(Category::UserCreation, || {
                self.client
                    .admin_create_user()
                    .user_pool_id(pool_id)
                    .username(username)
                    .set_user_attributes(Some(attrs.clone()))
                    .set_message_action(action.clone())
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(CreateOutcome::Created {
                sub: out.user().and_then(|u| attribute(u.attributes(), "sub")),
            }),
            Err(e) if e.is("UsernameExistsException") || e.is("AliasExistsException") => {
                Ok(CreateOutcome::Exists)
            }
            Err(e) => Err(e),
        }
    }

    pub async fn set_password(
        &self,
        pool_id: &str,
        username: &str,
        password: &str,
        permanent: bool,
    ) -> Result<(), CallError> {
        self.call(Category::UserAccountRecovery, || {
            self.client
                .admin_set_user_password()
                .user_pool_id(pool_id)
                .username(username)
                .password(password)
                .permanent(permanent)
                .send()
        })
        .await
        .map(drop)
    }

    pub async fn disable_user(&self, pool_id: &str, username: &str) -> Result<(), CallError> {
        self.call(Category::UserUpdate, || {
            self.client
                .admin_disable_user()
                .user_pool_id(pool_id)
                .username(username)
                .send()
        })
        .await
        .map(drop)
    }

    pub async fn add_to_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<(), CallError> {
        self.call(Category::UserUpdate, || {
            self.client
                .admin_add_user_to_group()
                .user_pool_id(pool_id)
                .username(username)
                .group_name(group)
                .send()
        })
        .await
        .map(drop)
    }

    /// Creates a group; `Ok(false)` if it exists already (it is left as it is).
    pub async fn create_group(
        &self,
        pool_id: &str,
        group: &GroupRecord,
    ) -> Result<bool, CallError> {
        let result = self
            .call(Category::UserPoolResourceUpdate, || {
                self.client
                    .create_group()
                    .user_pool_id(pool_id)
                    .group_name(&group.name)
                    .set_description(group.description.clone())
                    .set_precedence(group.precedence)
                    .set_role_arn(group.role_arn.clone())
                    .send()
            })
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.is("GroupExistsException") => Ok(false),
            Err(e) => Err(e),
        }
    }
}
