//! Golden files for every stored event: `tests/golden/<category>/<EventType>.json` holds the
//! stored form of one event (type, schema version, payload) exactly as a store keeps it.
//!
//! Each file must decode to the value built here and that value must encode back to the very
//! same type and payload, so changing an event's shape without an upcaster fails here, and not
//! in production when old streams stop decoding. Every variant needs a file: `file_of` matches
//! each event enum without a wildcard (a new variant does not compile until it is named), and
//! the variant list serde derives is compared with the files and examples on disk.
//!
//! When an event's shape has to change: keep its file, bump the event's schema version and
//! register an upcaster; the old file then decodes through the upcaster (update the file's
//! expected value, never its payload) and the new shape gets its own file.
//! `TENANTRY_GOLDEN_WRITE=1` writes the files of new variants; it never overwrites one.

use chrono::{DateTime, TimeZone, Utc};
use domain::access::{AccessEvent, Accessor, ApiKeyScope, Role, TenantAccess};
use domain::aggregate::{Aggregate, decode_event, encode_event};
use domain::ids::{ApiKeyId, InviteId, SessionId, TenantId, UserId};
use domain::personal_data::Sealed;
use domain::tenant::{ResourceKind, Slug, Tenant, TenantEvent, TenantName, TenantSettings};
use domain::user::{
    EmailClaim, EmailClaimEvent, LoginFailure, PasswordChangeReason, SecretHash, User, UserEvent,
};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[test]
fn tenant_events_match_their_golden_files() {
    check::<Tenant>(tenant_examples(), tenant_file);
}

#[test]
fn user_events_match_their_golden_files() {
    check::<User>(user_examples(), user_file);
}

#[test]
fn email_claim_events_match_their_golden_files() {
    check::<EmailClaim>(email_claim_examples(), email_claim_file);
}

#[test]
fn access_events_match_their_golden_files() {
    check::<TenantAccess>(access_examples(), access_file);
}

/// The checker itself must be able to fail: a value that differs from its file, and a
/// variant left without an example, are both reported.
#[test]
fn the_checker_reports_a_changed_value_and_a_variant_without_example() {
    let other_name = TenantEvent::TenantRenamed {
        name: TenantName::parse("Someone else").expect("name"),
        at: at(2),
    };
    let path = golden_dir::<Tenant>().join("TenantRenamed.json");
    assert!(check_one::<Tenant>(&other_name, "TenantRenamed", &path).is_err());

    let mut examples = tenant_examples();
    examples.retain(|e| !matches!(e, TenantEvent::TenantDataDeleted { .. }));
    let problems = problems::<Tenant>(&examples, tenant_file);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("TenantDataDeleted: no example")),
        "{problems:#?}"
    );
}

// Each event enum matched without a wildcard: a new variant does not compile until it is
// given its golden file here.

fn tenant_file(event: &TenantEvent) -> &'static str {
    match event {
        TenantEvent::TenantProvisioned { .. } => "TenantProvisioned",
        TenantEvent::TenantRenamed { .. } => "TenantRenamed",
        TenantEvent::TenantSettingsChanged { .. } => "TenantSettingsChanged",
        TenantEvent::TenantSuspended { .. } => "TenantSuspended",
        TenantEvent::TenantReactivated { .. } => "TenantReactivated",
        TenantEvent::TenantClosed { .. } => "TenantClosed",
        TenantEvent::TenantResourceAdded { .. } => "TenantResourceAdded",
        TenantEvent::TenantResourceRemoved { .. } => "TenantResourceRemoved",
        TenantEvent::TenantDataDeleted { .. } => "TenantDataDeleted",
    }
}

fn user_file(event: &UserEvent) -> &'static str {
    match event {
        UserEvent::UserSignedUp { .. } => "UserSignedUp",
        UserEvent::EmailVerificationIssued { .. } => "EmailVerificationIssued",
        UserEvent::EmailVerified { .. } => "EmailVerified",
        UserEvent::SessionStarted { .. } => "SessionStarted",
        UserEvent::RecoveryCodeUsed { .. } => "RecoveryCodeUsed",
        UserEvent::TotpCodeUsed { .. } => "TotpCodeUsed",
        UserEvent::LoginFailed { .. } => "LoginFailed",
        UserEvent::SessionEnded { .. } => "SessionEnded",
        UserEvent::PasswordResetRequested { .. } => "PasswordResetRequested",
        UserEvent::PasswordChanged { .. } => "PasswordChanged",
        UserEvent::TotpEnrollmentStarted { .. } => "TotpEnrollmentStarted",
        UserEvent::TotpEnabled { .. } => "TotpEnabled",
    }
}

fn email_claim_file(event: &EmailClaimEvent) -> &'static str {
    match event {
        EmailClaimEvent::EmailClaimed { .. } => "EmailClaimed",
    }
}

fn access_file(event: &AccessEvent) -> &'static str {
    match event {
        AccessEvent::MemberAdded { .. } => "MemberAdded",
        AccessEvent::MemberInvited { .. } => "MemberInvited",
        AccessEvent::InviteRevoked { .. } => "InviteRevoked",
        AccessEvent::MemberRoleChanged { .. } => "MemberRoleChanged",
        AccessEvent::MemberRemoved { .. } => "MemberRemoved",
        AccessEvent::ApiKeyCreated { .. } => "ApiKeyCreated",
        AccessEvent::ApiKeyRevoked { .. } => "ApiKeyRevoked",
    }
}

// ---------------------------------------------------------------------------------------------
// The expected values. Every field holds a value of its own (distinct ids, times, hashes), so
// two fields swapping names or meanings shows up as a difference.

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 15, minute, 26)
        .single()
        .expect("valid time")
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + n)
}

fn hash(s: &str) -> SecretHash {
    SecretHash::new(s.to_owned())
}

fn sealed(s: &str) -> Sealed {
    Sealed::from_sealed_text(s.to_owned())
}

fn tenant_examples() -> Vec<TenantEvent> {
    vec![
        TenantEvent::TenantProvisioned {
            tenant_id: TenantId::from_uuid(id(1)),
            name: TenantName::parse("Acme Corp").expect("name"),
            slug: Slug::parse("acme-corp").expect("slug"),
            settings: TenantSettings::parse(BTreeMap::from([
                ("billing.plan".to_owned(), "pro".to_owned()),
                ("region".to_owned(), "eu-west".to_owned()),
            ]))
            .expect("settings"),
            at: at(1),
        },
        TenantEvent::TenantRenamed {
            name: TenantName::parse("Acme Ltd").expect("name"),
            at: at(2),
        },
        TenantEvent::TenantSettingsChanged {
            settings: TenantSettings::parse(BTreeMap::from([(
                "region".to_owned(),
                "us-east".to_owned(),
            )]))
            .expect("settings"),
            at: at(3),
        },
        TenantEvent::TenantSuspended {
            reason: "unpaid invoice".to_owned(),
            at: at(4),
        },
        TenantEvent::TenantReactivated { at: at(5) },
        TenantEvent::TenantClosed {
            at: at(6),
            delete_data_after: at(7),
        },
        TenantEvent::TenantResourceAdded {
            kind: ResourceKind::BackupDestination,
            resource_id: id(2),
        },
        TenantEvent::TenantResourceRemoved {
            kind: ResourceKind::ApiKey,
            resource_id: id(3),
        },
        TenantEvent::TenantDataDeleted { at: at(8) },
    ]
}

fn user_examples() -> Vec<UserEvent> {
    vec![
        UserEvent::UserSignedUp {
            user_id: UserId::from_uuid(id(10)),
            email: sealed("v1.sealed-email"),
            email_index: id(11),
            password: hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"),
            verification: hash("sha256:verification"),
            verification_expires_at: at(11),
            at: at(10),
        },
        UserEvent::EmailVerificationIssued {
            verification: hash("sha256:verification-2"),
            expires_at: at(13),
            at: at(12),
        },
        UserEvent::EmailVerified { at: at(14) },
        UserEvent::SessionStarted {
            session_id: SessionId::from_uuid(id(12)),
            expires_at: at(16),
            at: at(15),
        },
        UserEvent::RecoveryCodeUsed {
            code: hash("sha256:recovery-1"),
            at: at(17),
        },
        UserEvent::TotpCodeUsed {
            step: 59_363_186,
            at: at(18),
        },
        UserEvent::LoginFailed {
            reason: LoginFailure::WrongSecondFactor,
            at: at(19),
        },
        UserEvent::SessionEnded {
            session_id: SessionId::from_uuid(id(13)),
            at: at(20),
        },
        UserEvent::PasswordResetRequested {
            token: hash("sha256:reset"),
            expires_at: at(22),
            at: at(21),
        },
        UserEvent::PasswordChanged {
            password: hash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI"),
            reason: PasswordChangeReason::Changed,
            kept_session: Some(SessionId::from_uuid(id(14))),
            at: at(23),
        },
        UserEvent::TotpEnrollmentStarted {
            secret: sealed("v1.sealed-totp-secret"),
            at: at(24),
        },
        UserEvent::TotpEnabled {
            recovery_codes: vec![hash("sha256:recovery-1"), hash("sha256:recovery-2")],
            at: at(25),
        },
    ]
}

fn email_claim_examples() -> Vec<EmailClaimEvent> {
    vec![EmailClaimEvent::EmailClaimed {
        user_id: UserId::from_uuid(id(20)),
    }]
}

fn access_examples() -> Vec<AccessEvent> {
    vec![
        AccessEvent::MemberAdded {
            user_id: UserId::from_uuid(id(30)),
            email: sealed("v1.sealed-member-email"),
            role: Role::Admin,
            invite_id: Some(InviteId::from_uuid(id(31))),
            at: at(30),
        },
        AccessEvent::MemberInvited {
            invite_id: InviteId::from_uuid(id(32)),
            email: sealed("v1.sealed-invitee-email"),
            email_index: id(33),
            role: Role::Viewer,
            token: hash("sha256:invite"),
            expires_at: at(32),
            by: Accessor::User(UserId::from_uuid(id(34))),
            at: at(31),
        },
        AccessEvent::InviteRevoked {
            invite_id: InviteId::from_uuid(id(35)),
            at: at(33),
        },
        AccessEvent::MemberRoleChanged {
            user_id: UserId::from_uuid(id(36)),
            role: Role::Owner,
            by: Accessor::ApiKey(ApiKeyId::from_uuid(id(37))),
            at: at(34),
        },
        AccessEvent::MemberRemoved {
            user_id: UserId::from_uuid(id(38)),
            by: Accessor::User(UserId::from_uuid(id(38))),
            at: at(35),
        },
        AccessEvent::ApiKeyCreated {
            key_id: ApiKeyId::from_uuid(id(39)),
            name: "ci deploys".to_owned(),
            scope: ApiKeyScope::ReadWrite,
            secret: hash("sha256:api-key"),
            by: Accessor::User(UserId::from_uuid(id(40))),
            at: at(36),
        },
        AccessEvent::ApiKeyRevoked {
            key_id: ApiKeyId::from_uuid(id(41)),
            by: Accessor::ApiKey(ApiKeyId::from_uuid(id(42))),
            at: at(37),
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// The checker.

fn check<A>(examples: Vec<A::Event>, file_of: fn(&A::Event) -> &'static str)
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let problems = problems::<A>(&examples, file_of);
    assert!(
        problems.is_empty(),
        "stored events of `{}` no longer match their golden files:\n{}",
        A::CATEGORY,
        problems.join("\n")
    );
}

/// Everything wrong with `examples` against the variant list and the files on disk.
fn problems<A>(examples: &[A::Event], file_of: fn(&A::Event) -> &'static str) -> Vec<String>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let dir = golden_dir::<A>();
    let mut problems = vec![];

    let variants: BTreeSet<&str> = variant_names::<A::Event>().iter().copied().collect();
    let named: Vec<&str> = examples.iter().map(file_of).collect();
    let named_set: BTreeSet<&str> = named.iter().copied().collect();
    if named_set.len() != named.len() {
        problems.push(format!("two examples share a golden file: {named:?}"));
    }
    for missing in variants.difference(&named_set) {
        problems.push(format!(
            "{missing}: no example value (add one and its file)"
        ));
    }
    for file in files_in(&dir) {
        if !variants.contains(file.as_str()) {
            problems.push(format!("{file}.json: no such event variant any more"));
        }
    }

    for (event, file) in examples.iter().zip(named) {
        let path = dir.join(format!("{file}.json"));
        if let Err(problem) = check_one::<A>(event, file, &path) {
            problems.push(format!("{file}: {problem}"));
        }
    }
    problems
}

fn check_one<A>(event: &A::Event, file: &str, path: &Path) -> Result<(), String>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
{
    let (event_type, payload) = encode_event(event).map_err(|e| format!("encode: {e}"))?;
    if event_type != file {
        return Err(format!("encodes as type {event_type}, not {file}"));
    }
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(_) if std::env::var_os("TENANTRY_GOLDEN_WRITE").is_some() => {
            let stored = json!({
                "type": event_type,
                "schema_version": A::schema_version(&event_type),
                "payload": payload,
            });
            let text = serde_json::to_string_pretty(&stored).map_err(|e| e.to_string())? + "\n";
            std::fs::create_dir_all(path.parent().unwrap_or(path)).map_err(|e| e.to_string())?;
            std::fs::write(path, &text).map_err(|e| format!("write {}: {e}", path.display()))?;
            text
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let stored: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let golden_type = stored["type"].as_str().unwrap_or_default();
    let version = stored["schema_version"]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or("schema_version must be a number")?;
    let golden_payload = stored["payload"].clone();

    if golden_type != file {
        return Err(format!("the file says type {golden_type}"));
    }
    if version != A::schema_version(file) {
        return Err(format!(
            "stored at schema v{version}, the aggregate writes v{}: keep this file as the old \
             version's and add one for the new",
            A::schema_version(file)
        ));
    }
    let decoded = decode_event::<A>(file, version, golden_payload.clone())
        .map_err(|e| format!("the golden payload no longer decodes: {e}"))?;
    if &decoded != event {
        return Err(format!("decodes to\n  {decoded:?}\nnot\n  {event:?}"));
    }
    if payload != golden_payload {
        return Err(format!(
            "encodes as\n  {payload}\nnot as stored\n  {golden_payload}"
        ));
    }
    Ok(())
}

fn golden_dir<A: Aggregate>() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(A::CATEGORY)
}

/// The golden files present for one aggregate, by event type.
fn files_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p: PathBuf| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    files.sort();
    files
}

/// The variant names serde derived for an enum, read by asking it to deserialize from a
/// deserializer that records the list it is handed and then gives up.
fn variant_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Recorder<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Recorder<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            variants: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = variants;
            Err(de::Error::custom("recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
            ignored_any
        }
    }

    let mut variants: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut variants));
    variants
}
