//! How a tenant is called: its display name and its URL-safe slug.

use super::TenantError;
use serde::{Deserialize, Serialize};

// Deserializing does not run `parse` again (`transparent`): values are read back from stored
// events and snapshots, which were valid under the rule of the day they were written.
// Re-checking them would make a stream unreadable as soon as a rule tightens. Input from
// outside goes through `parse`, the only way to build one by hand.

/// A tenant's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantName(String);

impl TenantName {
    pub fn parse(name: &str) -> Result<Self, TenantError> {
        let name = name.trim();
        let len = name.chars().count();
        if len == 0 || len > 100 || name.chars().any(char::is_control) {
            return Err(TenantError::InvalidName);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantName {
    type Error = TenantError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantName> for String {
    fn from(value: TenantName) -> Self {
        value.0
    }
}

/// A URL-safe handle: 3 to 63 of `a-z 0-9 -`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Slug(String);

impl Slug {
    pub fn parse(slug: &str) -> Result<Self, TenantError> {
        let ok = (3..=63).contains(&slug.len())
            && slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if ok {
            Ok(Self(slug.to_owned()))
        } else {
            Err(TenantError::InvalidSlug)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = TenantError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_slugs_parse_once() {
        assert!(TenantName::parse("").is_err());
        assert!(TenantName::parse(&"x".repeat(101)).is_err());
        assert!(Slug::parse("ab").is_err());
        assert!(Slug::parse("-acme").is_err());
        assert!(Slug::parse("Acme").is_err());
    }
}
