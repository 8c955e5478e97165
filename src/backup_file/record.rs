//! One user record of a backup file: the SDK's user shape with the SDK's field names, as the
//! Go original writes it, plus an optional inline `Groups` list as `cognito-backup` writes it.

use serde::{Deserialize, Serialize};

/// A user as Cognito's ListUsers returns it. Fields are in the Go original's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    #[serde(rename = "Attributes", default, deserialize_with = "null_as_empty")]
    pub attributes: Vec<Attribute>,
    /// Missing in a file means enabled, as for every user Cognito creates.
    #[serde(rename = "Enabled", default = "enabled_by_default")]
    pub enabled: bool,
    /// Legacy SMS MFA settings; `null` when the user has none, as in the Go original.
    #[serde(rename = "MFAOptions", default)]
    pub mfa_options: Option<Vec<MfaOption>>,
    /// RFC 3339, UTC, milliseconds: `2024-01-02T03:04:05.678Z`.
    #[serde(rename = "UserCreateDate", default)]
    pub user_create_date: Option<String>,
    #[serde(rename = "UserLastModifiedDate", default)]
    pub user_last_modified_date: Option<String>,
    #[serde(rename = "UserStatus", default)]
    pub user_status: Option<String>,
    #[serde(rename = "Username")]
    pub username: String,
    /// Names of the groups the user belongs to. Absent in files that carry no memberships.
    #[serde(rename = "Groups", skip_serializing_if = "Option::is_none", default)]
    pub groups: Option<Vec<String>>,
}

fn enabled_by_default() -> bool {
    true
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Attribute>, D::Error> {
    Ok(Option::<Vec<Attribute>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MfaOption {
    #[serde(rename = "AttributeName")]
    pub attribute_name: Option<String>,
    #[serde(rename = "DeliveryMedium")]
    pub delivery_medium: Option<String>,
}

/// The status Cognito gives federated users; they cannot be created as native users.
pub const EXTERNAL_PROVIDER: &str = "EXTERNAL_PROVIDER";

impl UserRecord {
    /// The value of an attribute, if the user has it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .and_then(|a| a.value.as_deref())
    }

    pub fn sub(&self) -> Option<&str> {
        self.attribute("sub")
    }

    pub fn status(&self) -> &str {
        self.user_status.as_deref().unwrap_or("")
    }

    pub fn groups(&self) -> &[String] {
        self.groups.as_deref().unwrap_or(&[])
    }
}

/// The one builder of user records for unit tests: enabled, CONFIRMED, with these attributes in
/// this order, no dates and no `Groups`.
#[cfg(test)]
pub fn test_user(username: &str, attributes: &[(&str, &str)]) -> UserRecord {
    UserRecord {
        attributes: attributes
            .iter()
            .map(|(n, v)| Attribute {
                name: n.to_string(),
                value: Some(v.to_string()),
            })
            .collect(),
        enabled: true,
        mfa_options: None,
        user_create_date: None,
        user_last_modified_date: None,
        user_status: Some("CONFIRMED".into()),
        username: username.into(),
        groups: None,
    }
}
