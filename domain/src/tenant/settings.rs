//! A tenant's free-form settings.

use super::TenantError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

// Deserializing does not run `parse` again (`transparent`): values are read back from stored
// events and snapshots, which were valid under the rule of the day they were written.
// Re-checking them would make a stream unreadable as soon as a rule tightens. Input from
// outside goes through `parse`, the only way to build one by hand.

/// Free-form tenant settings: at most 50 keys of `a-z 0-9 _ .` (1-64 bytes), values of at most
/// 1,024 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantSettings(BTreeMap<String, String>);

impl TenantSettings {
    pub fn parse(entries: BTreeMap<String, String>) -> Result<Self, TenantError> {
        let key_ok = |k: &str| {
            (1..=64).contains(&k.len())
                && k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
        };
        if entries.len() > 50
            || entries
                .iter()
                .any(|(k, v)| !key_ok(k) || v.len() > 1024 || v.contains('\0'))
        {
            return Err(TenantError::InvalidSettings);
        }
        Ok(Self(entries))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn entries(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl TryFrom<BTreeMap<String, String>> for TenantSettings {
    type Error = TenantError;
    fn try_from(value: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<TenantSettings> for BTreeMap<String, String> {
    fn from(value: TenantSettings) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_once() {
        let bad = BTreeMap::from([("Bad Key".to_owned(), "v".to_owned())]);
        assert!(TenantSettings::parse(bad).is_err());
    }
}
