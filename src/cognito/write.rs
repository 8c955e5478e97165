//! Writes: create users and groups, set passwords and attributes, enable and disable users,
//! add and remove memberships. Creating reports "already there" as an outcome, not an error,
//! so a restore can run twice.

use super::read::attribute;
use super::{CallError, Category, Cognito};
use crate::backup_file::GroupRecord;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, DeliveryMediumType, MessageActionType,
};

/// What AdminCreateUser did.
#[derive(Debug)]
pub enum CreateOutcome {
    /// Created; the new user's username (generated in email or phone sign-in pools) and `sub`.
    Created {
        username: Option<String>,
        sub: Option<String>,
    },
    /// A user with this username (or alias) exists already.
    Exists,
}

/// Whether AdminCreateUser may send its invitation, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invitation {
    pub email: bool,
    pub sms: bool,
}

impl Invitation {
    /// Nothing is sent (`MessageAction=SUPPRESS`).
    pub const NONE: Invitation = Invitation {
        email: false,
        sms: false,
    };
}

fn attribute_types(attributes: &[(String, String)]) -> Vec<AttributeType> {
    attributes
        .iter()
        .map(|(name, value)| {
            AttributeType::builder()
                .name(name)
                .value(value)
                .build()
                .expect("name is set")
        })
        .collect()
}

impl Cognito {
    /// Creates a user with the given attributes. With [`Invitation::NONE`] Cognito sends
    /// nothing (`MessageAction=SUPPRESS`); otherwise it sends its invitation by exactly the
    /// media asked for (`DesiredDeliveryMediums`; Cognito's default would be SMS).
    pub async fn create_user(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &[(String, String)],
        invitation: Invitation,
    ) -> Result<CreateOutcome, CallError> {
        let attrs = attribute_types(attributes);
        let action = (invitation == Invitation::NONE).then_some(MessageActionType::Suppress);
        let mut media = Vec::new();
        if invitation.email {
            media.push(DeliveryMediumType::Email);
        }
        if invitation.sms {
            media.push(DeliveryMediumType::Sms);
        }
        let media = (!media.is_empty()).then_some(media);
        let result = self
            .call(Category::UserCreation, || {
                self.client
                    .admin_create_user()
                    .user_pool_id(pool_id)
                    .username(username)
                    .set_user_attributes(Some(attrs.clone()))
                    .set_message_action(action.clone())
                    .set_desired_delivery_mediums(media.clone())
                    .send()
            })
            .await;
        match result {
            Ok(out) => Ok(CreateOutcome::Created {
                username: out.user().and_then(|u| u.username()).map(str::to_string),
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

    pub async fn enable_user(&self, pool_id: &str, username: &str) -> Result<(), CallError> {
        self.call(Category::UserUpdate, || {
            self.client
                .admin_enable_user()
                .user_pool_id(pool_id)
                .username(username)
                .send()
        })
        .await
        .map(drop)
    }

    /// Sets attributes (AdminUpdateUserAttributes). The caller makes sure no message follows:
    /// an email or phone number is only sent with its `*_verified` flag set to true.
    pub async fn update_attributes(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &[(String, String)],
    ) -> Result<(), CallError> {
        let attrs = attribute_types(attributes);
        self.call(Category::UserUpdate, || {
            self.client
                .admin_update_user_attributes()
                .user_pool_id(pool_id)
                .username(username)
                .set_user_attributes(Some(attrs.clone()))
                .send()
        })
        .await
        .map(drop)
    }

    pub async fn delete_attributes(
        &self,
        pool_id: &str,
        username: &str,
        names: &[String],
    ) -> Result<(), CallError> {
        self.call(Category::UserUpdate, || {
            self.client
                .admin_delete_user_attributes()
                .user_pool_id(pool_id)
                .username(username)
                .set_user_attribute_names(Some(names.to_vec()))
                .send()
        })
        .await
        .map(drop)
    }

    pub async fn remove_from_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<(), CallError> {
        self.call(Category::UserUpdate, || {
            self.client
                .admin_remove_user_from_group()
                .user_pool_id(pool_id)
                .username(username)
                .group_name(group)
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
        self.group_ops.acquire().await;
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
