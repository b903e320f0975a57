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
use domain::ids::{ApiKeyId, InviteId, SessionId, SubjectId, TenantId, UserId};
use domain::mail::{DeliveryEvent, MailDelivery, MailKind, NotSentReason, QueuedMail};
use domain::metering::{UsageEvent, UsageEventEvent, UsageRefusal};
use domain::payments::{NoticeEvent, NoticeOutcome, ProviderNotice};
use domain::personal_data::Sealed;
use domain::plan::{
    Currency, Feature, Interval, Limit, LimitKey, Overage, Plan, PlanEvent, PlanKey, PlanName,
    PlanRef, PlanVersion, Price,
};
use domain::subscription::{LimitOverride, Proration, Subscription, SubscriptionEvent};
use domain::tenant::{
    ResourceKind, Slug, SlugClaim, SlugClaimEvent, Tenant, TenantEvent, TenantName, TenantSettings,
};
use domain::testing::golden::{check, check_one, golden_dir, problems};
use domain::user::{
    EmailClaim, EmailClaimEvent, LoginFailure, PasswordChangeReason, SecretHash, User, UserEvent,
};
use domain::webhook::{Delivery, DeliveryStatus, WebhookEndpoint, WebhookEvent, WebhookUrl};
use std::collections::BTreeMap;
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
fn slug_claim_events_match_their_golden_files() {
    check::<SlugClaim>(
        vec![SlugClaimEvent::SlugClaimed {
            tenant_id: TenantId::from_uuid(id(40)),
        }],
        |event| match event {
            SlugClaimEvent::SlugClaimed { .. } => "SlugClaimed",
        },
    );
}

#[test]
fn mail_delivery_events_match_their_golden_files() {
    check::<MailDelivery>(
        vec![
            DeliveryEvent::MailSent {
                attempts: 2,
                at: at(40),
            },
            DeliveryEvent::MailNotSent {
                reason: NotSentReason::Refused("the SMTP server refused the message".into()),
                attempts: 1,
                at: at(41),
            },
        ],
        |event| match event {
            DeliveryEvent::MailSent { .. } => "MailSent",
            DeliveryEvent::MailNotSent { .. } => "MailNotSent",
        },
    );
}

#[test]
fn audit_ledger_events_match_their_golden_files() {
    use domain::audit::export::ExportFormat;
    use domain::audit::{AuditLedger, LedgerEvent};
    check::<AuditLedger>(
        vec![
            LedgerEvent::ExportRequested {
                export_id: id(90),
                format: ExportFormat::Csv,
                from: Some(at(1)),
                to: Some(at(2)),
                at: at(3),
            },
            LedgerEvent::DigestIssued {
                export_id: id(90),
                format: ExportFormat::Csv,
                from: Some(at(1)),
                to: Some(at(2)),
                previous: Some("ab".repeat(32)),
                digest_sha256: "cd".repeat(32),
                first_seq: Some(1),
                last_seq: Some(42),
                entry_count: 42,
                location: "s3://audit/acme/export.csv".into(),
                at: at(4),
            },
            LedgerEvent::ExportFailed {
                export_id: id(91),
                reason: "the bucket does not exist".into(),
                at: at(5),
            },
            LedgerEvent::RequestRefused {
                code: "FORBIDDEN".into(),
                operation: "removeMember".into(),
                at: at(7),
            },
            LedgerEvent::RetentionSet {
                days: Some(365),
                at: at(8),
            },
            LedgerEvent::EntriesArchived {
                up_to_seq: 41,
                digest_sha256: "cd".repeat(32),
                location: "s3://audit/acme/archive.jsonl".into(),
                at: at(9),
            },
            LedgerEvent::LogRead {
                what: "auditLog".into(),
                filter: "{\"action\":\"MemberRemoved\"}".into(),
                at: at(6),
            },
        ],
        |event| match event {
            LedgerEvent::ExportRequested { .. } => "ExportRequested",
            LedgerEvent::DigestIssued { .. } => "DigestIssued",
            LedgerEvent::ExportFailed { .. } => "ExportFailed",
            LedgerEvent::LogRead { .. } => "LogRead",
            LedgerEvent::RequestRefused { .. } => "RequestRefused",
            LedgerEvent::RetentionSet { .. } => "RetentionSet",
            LedgerEvent::EntriesArchived { .. } => "EntriesArchived",
        },
    );
}

#[test]
fn webhook_endpoint_events_match_their_golden_files() {
    let delivery = |status| Delivery {
        webhook_id: "msg_0190000000007000800000000000004a".into(),
        event_type: "usage.allowance_reached".into(),
        status,
        attempts: 3,
        at: at(49),
    };
    check::<WebhookEndpoint>(
        vec![
            WebhookEvent::EndpointSet {
                tenant_id: TenantId::from_uuid(id(64)),
                url: WebhookUrl::parse("https://hooks.example.com/tenantry", false).expect("url"),
                key_id: id(72),
                at: at(48),
            },
            WebhookEvent::DeliveryRecorded(delivery(DeliveryStatus::Failed {
                reason: "the endpoint answered 503 Service Unavailable".into(),
            })),
            WebhookEvent::EndpointRemoved { at: at(50) },
        ],
        |event| match event {
            WebhookEvent::EndpointSet { .. } => "EndpointSet",
            WebhookEvent::DeliveryRecorded(_) => "DeliveryRecorded",
            WebhookEvent::EndpointRemoved { .. } => "EndpointRemoved",
        },
    );
}

#[test]
fn usage_events_match_their_golden_files() {
    check::<UsageEvent>(
        vec![
            UsageEventEvent::UsageRecorded {
                tenant_id: TenantId::from_uuid(id(64)),
                client_id: "run-42/chunk-7".into(),
                meter: "bandwidth.bytes".into(),
                value: 1_048_576,
                key: None,
                occurred_at: at(46),
            },
            UsageEventEvent::UsageRefused {
                tenant_id: TenantId::from_uuid(id(64)),
                client_id: "run-41/chunk-2".into(),
                meter: "bandwidth.bytes".into(),
                value: 4096,
                occurred_at: at(10),
                reason: UsageRefusal::TooLate {
                    period_end: at(20),
                    seconds: 3_600,
                    grace: 259_200,
                },
                refused_at: at(47),
            },
        ],
        |event| match event {
            UsageEventEvent::UsageRecorded { .. } => "UsageRecorded",
            UsageEventEvent::UsageRefused { .. } => "UsageRefused",
        },
    );
}

#[test]
fn provider_notice_events_match_their_golden_files() {
    check::<ProviderNotice>(
        vec![NoticeEvent::NoticeReceived {
            provider: "stripe".into(),
            event_id: "evt_1Q2w3E4r5T6y7U8i".into(),
            event_type: "invoice.payment_failed".into(),
            object_id: Some("in_1Q2w3E4r5T6y7U8i".into()),
            tenant_id: Some(TenantId::from_uuid(id(63))),
            created: at(44),
            outcome: NoticeOutcome::Applied { changed: true },
            at: at(45),
        }],
        |event| match event {
            NoticeEvent::NoticeReceived { .. } => "NoticeReceived",
        },
    );
}

/// Every kind of queued mail and every reason a mail was not sent keeps its stored form.
#[test]
fn mail_kinds_and_reasons_keep_their_stored_forms() {
    let tenant = TenantId::from_uuid(id(45));
    for (value, stored) in [
        (
            serde_json::to_value(MailKind::Verification),
            serde_json::json!("Verification"),
        ),
        (
            serde_json::to_value(MailKind::PasswordReset),
            serde_json::json!("PasswordReset"),
        ),
        (
            serde_json::to_value(MailKind::SignUpAttempt),
            serde_json::json!("SignUpAttempt"),
        ),
        (
            serde_json::to_value(MailKind::Invite {
                tenant_id: tenant,
                role: Role::Admin,
            }),
            serde_json::json!({"Invite": {"tenant_id": tenant.to_string(), "role": "admin"}}),
        ),
        (
            serde_json::to_value(NotSentReason::Expired),
            serde_json::json!("Expired"),
        ),
        (
            serde_json::to_value(NotSentReason::SubjectForgotten),
            serde_json::json!("SubjectForgotten"),
        ),
    ] {
        assert_eq!(value.expect("encodes"), stored);
    }
}

fn eur(amount: i64) -> Price {
    Price {
        interval: Interval::Month,
        amount,
        currency: Currency::parse("eur").expect("currency"),
    }
}

fn plan_ref(key: &str, version: u32) -> PlanRef {
    PlanRef {
        key: PlanKey::parse(key).expect("key"),
        version,
    }
}

#[test]
fn plan_events_match_their_golden_files() {
    let mut limits = BTreeMap::new();
    limits.insert(LimitKey::Sources, Limit::At(10));
    limits.insert(LimitKey::BandwidthBytesPerMonth, Limit::Unlimited);
    check::<Plan>(
        vec![
            PlanEvent::PlanVersionPublished {
                key: PlanKey::parse("pro").expect("key"),
                version: PlanVersion {
                    version: 2,
                    name: PlanName::parse("Pro").expect("name"),
                    prices: vec![eur(2_900)],
                    trial_days: 14,
                    limits,
                    features: [Feature::parse("sso").expect("feature")].into(),
                    overage: vec![
                        Overage::parse("bandwidth.bytes", 10, 1_000_000_000).expect("overage"),
                    ],
                    published_at: at(50),
                },
            },
            PlanEvent::PlanRetired { at: at(51) },
        ],
        |event| match event {
            PlanEvent::PlanVersionPublished { .. } => "PlanVersionPublished",
            PlanEvent::PlanRetired { .. } => "PlanRetired",
        },
    );
}

#[test]
fn subscription_events_match_their_golden_files() {
    use SubscriptionEvent as E;
    check::<Subscription>(
        vec![
            E::SubscriptionStarted {
                tenant_id: TenantId::from_uuid(id(60)),
                plan: plan_ref("pro", 1),
                price: eur(2_900),
                trial_ends_at: Some(at(51)),
                anchor: at(51),
                period_start: at(50),
                period_end: at(51),
                at: at(50),
            },
            E::PlanChanged {
                plan: plan_ref("business", 3),
                price: eur(9_900),
                proration: Some(Proration {
                    credit: 1_450,
                    charge: 4_950,
                }),
                at: at(52),
            },
            E::PlanChangeScheduled {
                plan: plan_ref("free", 1),
                price: eur(0),
                effective_at: at(54),
                at: at(53),
            },
            E::CancellationScheduled {
                cancel_at: at(54),
                at: at(53),
            },
            E::CancellationWithdrawn { at: at(53) },
            E::SubscriptionCancelled { at: at(55) },
            E::PeriodRenewed {
                period_start: at(54),
                period_end: at(56),
                changed_to: Some((plan_ref("free", 1), eur(0))),
                at: at(54),
            },
            E::PaymentFailed {
                grace_until: at(57),
                at: at(56),
            },
            E::SubscriptionSuspended { at: at(57) },
            E::PaymentRecovered { at: at(58) },
            E::LimitOverridden {
                key: LimitKey::Members,
                limit: Some(LimitOverride {
                    limit: Limit::At(50),
                    expires_at: Some(at(59)),
                }),
                at: at(58),
            },
            E::AllowanceWarned {
                key: LimitKey::BandwidthBytesPerMonth,
                period_start: at(50),
                used: 4_000_000_000,
                limit: 5_000_000_000,
                mails: vec![QueuedMail {
                    mail_id: id(61),
                    subject: SubjectId::from_uuid(id(62)),
                    to: sealed("v1.sealed-owner-email"),
                    kind: MailKind::AllowanceWarning {
                        tenant_id: TenantId::from_uuid(id(60)),
                        key: LimitKey::BandwidthBytesPerMonth,
                        percent: 80,
                        period_end: at(51),
                    },
                    token: None,
                    expires_at: Some(at(51)),
                }],
                at: at(59),
            },
            E::AllowanceReached {
                key: LimitKey::DataPointsPerMonth,
                period_start: at(50),
                used: 100_000,
                limit: 100_000,
                mails: vec![],
                at: at(59),
            },
            E::TrialEnded {
                period_start: at(52),
                period_end: at(58),
                at: at(52),
            },
            E::ProviderCustomerLinked {
                customer: "cus_Q1w2e3r4t5y6u7".into(),
                at: at(50),
            },
            E::ProviderSubscriptionLinked {
                subscription: "sub_A1s2d3f4g5h6j7".into(),
                item: "si_Z1x2c3v4b5n6m7".into(),
                at: at(50),
            },
        ],
        |event| match event {
            E::TrialEnded { .. } => "TrialEnded",
            E::AllowanceReached { .. } => "AllowanceReached",
            E::ProviderCustomerLinked { .. } => "ProviderCustomerLinked",
            E::ProviderSubscriptionLinked { .. } => "ProviderSubscriptionLinked",
            E::SubscriptionStarted { .. } => "SubscriptionStarted",
            E::PlanChanged { .. } => "PlanChanged",
            E::PlanChangeScheduled { .. } => "PlanChangeScheduled",
            E::CancellationScheduled { .. } => "CancellationScheduled",
            E::CancellationWithdrawn { .. } => "CancellationWithdrawn",
            E::SubscriptionCancelled { .. } => "SubscriptionCancelled",
            E::PeriodRenewed { .. } => "PeriodRenewed",
            E::PaymentFailed { .. } => "PaymentFailed",
            E::SubscriptionSuspended { .. } => "SubscriptionSuspended",
            E::PaymentRecovered { .. } => "PaymentRecovered",
            E::LimitOverridden { .. } => "LimitOverridden",
            E::AllowanceWarned { .. } => "AllowanceWarned",
        },
    );
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
        UserEvent::TotpDisabled { .. } => "TotpDisabled",
        UserEvent::MailQueued { .. } => "MailQueued",
        UserEvent::SubjectForgotten { .. } => "SubjectForgotten",
        UserEvent::AccountDeleted { .. } => "AccountDeleted",
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
        AccessEvent::InviteMailQueued { .. } => "InviteMailQueued",
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
        UserEvent::TotpDisabled { at: at(26) },
        UserEvent::AccountDeleted { at: at(27) },
        UserEvent::SubjectForgotten { at: at(27) },
        UserEvent::MailQueued {
            mail: QueuedMail {
                mail_id: id(15),
                subject: SubjectId::from_uuid(id(10)),
                to: sealed("v1.sealed-address"),
                kind: MailKind::PasswordReset,
                token: Some(sealed("v1.sealed-token")),
                expires_at: Some(at(28)),
            },
            at: at(27),
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
        AccessEvent::InviteMailQueued {
            mail: QueuedMail {
                mail_id: id(43),
                subject: SubjectId::from_uuid(id(32)),
                to: sealed("v1.sealed-invitee-email"),
                kind: MailKind::Invite {
                    tenant_id: TenantId::from_uuid(id(44)),
                    role: Role::Viewer,
                },
                token: Some(sealed("v1.sealed-invite-token")),
                expires_at: Some(at(32)),
            },
            at: at(38),
        },
    ]
}

/// `PasswordChanged` stores its reason as text; every reason's form is pinned here (the
/// golden file shows one).
#[test]
fn password_change_reasons_keep_their_stored_names() {
    for (reason, stored) in [
        (PasswordChangeReason::Changed, "changed"),
        (PasswordChangeReason::Reset, "reset"),
        (
            PasswordChangeReason::SetAtVerification,
            "set_at_verification",
        ),
        (
            PasswordChangeReason::ReplacedBySignUp,
            "replaced_by_sign_up",
        ),
    ] {
        assert_eq!(
            serde_json::to_value(reason).expect("encodes"),
            serde_json::json!(stored)
        );
        assert_eq!(
            serde_json::from_value::<PasswordChangeReason>(serde_json::json!(stored))
                .expect("decodes"),
            reason
        );
    }
}
