//! The billing use cases against real stores (SQLite and PostgreSQL), with the clock in the
//! test's hands: a trial becomes active at its end, a failed payment runs out its grace and
//! the tenant is suspended, a recovered payment reactivates it, renewals written by two
//! processes at once write once, and the free plan is published once.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;
use support::{system, tenant};

use chrono::{Duration, TimeZone, Utc};
use commands::Executor;
use commands::billing::{
    SubscriptionChange, SuspendUnpaid, change_subscription, effective_limit, publish_plan, renew,
    seed_free_plan, subscribe,
};
use commands::tenancy::{CreateTenant, Founder, create_tenant};
use domain::aggregate::Aggregate;
use domain::event::Position;
use domain::plan::{Interval, Limit, LimitKey, Plan, PlanDraft, PlanKey, PlanName};
use domain::reactor::Reactor;
use domain::subscription::{Subscription, SubscriptionStatus};
use domain::tenant::{Slug, Tenant, TenantName, TenantSettings, TenantStatus};
use infra::database::Database;

infra::on_both_backends!(
    allowances_warn_owners_once_at_80_percent_and_refuse_at_100,
    a_subscription_lives_through_trial_failed_payment_grace_and_recovery,
    the_free_plan_is_published_once_and_binds_tenants_without_a_subscription,
);

async fn a_subscription_lives_through_trial_failed_payment_grace_and_recovery(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let day0 = Utc.with_ymd_and_hms(2026, 1, 31, 9, 0, 0).single().unwrap();
    let mut pro = PlanDraft::free();
    pro.name = PlanName::parse("Pro").unwrap();
    pro.prices[0].amount = 2_900;
    pro.trial_days = 14;
    let key = PlanKey::parse("pro").unwrap();
    publish_plan(&exec, &system(), day0, key.clone(), pro)
        .await
        .unwrap();
    let acme = tenant(&exec).await;
    subscribe(&exec, &system(), day0, acme, (&key, Interval::Month))
        .await
        .unwrap();
    let state = async || {
        exec.load::<Subscription>(acme.as_uuid())
            .await
            .unwrap()
            .state
    };
    assert_eq!(state().await.status, Some(SubscriptionStatus::Trialing));

    // The trial ends on February 14: the first paid month runs to March 14.
    let trial_end = day0 + Duration::days(14);
    renew(&exec, trial_end - Duration::seconds(1), acme)
        .await
        .unwrap();
    assert_eq!(state().await.status, Some(SubscriptionStatus::Trialing));
    // Two processes renewing at the same moment write one renewal.
    let head = store.head().await.unwrap();
    let (first, second) =
        tokio::join!(renew(&exec, trial_end, acme), renew(&exec, trial_end, acme));
    first.unwrap();
    second.unwrap();
    let after_one = store.head().await.unwrap();
    assert_eq!(after_one.0, head.0 + 1);
    let s = state().await;
    assert_eq!(s.status, Some(SubscriptionStatus::Active));
    assert_eq!(
        s.period_end,
        Some(Utc.with_ymd_and_hms(2026, 3, 14, 9, 0, 0).single().unwrap())
    );

    // A payment fails: past due, then suspended when the grace period is over, and the
    // tenant with it (the reactor); the payment recovers: both active again.
    let failed_at = trial_end + Duration::days(1);
    change_subscription(
        &exec,
        &system(),
        failed_at,
        acme,
        SubscriptionChange::PaymentFailed {
            grace: Duration::days(3),
        },
    )
    .await
    .unwrap();
    renew(&exec, failed_at + Duration::days(2), acme)
        .await
        .unwrap();
    assert_eq!(state().await.status, Some(SubscriptionStatus::PastDue));
    renew(&exec, failed_at + Duration::days(3), acme)
        .await
        .unwrap();
    assert_eq!(state().await.status, Some(SubscriptionStatus::Suspended));
    let reactor = SuspendUnpaid::new(exec.clone());
    let react = async |after: Position| {
        let events: Vec<_> = store
            .read_all(after, 1_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| reactor.reads().includes(e))
            .collect();
        reactor.react(&events).await.unwrap();
        // Redelivered: nothing twice.
        let head = store.head().await.unwrap();
        reactor.react(&events).await.unwrap();
        assert_eq!(store.head().await.unwrap(), head);
    };
    react(after_one).await;
    let tenant_status = async || {
        exec.load::<Tenant>(acme.as_uuid())
            .await
            .unwrap()
            .state
            .status
    };
    assert_eq!(tenant_status().await, Some(TenantStatus::Suspended));
    let suspended_at = store.head().await.unwrap();
    change_subscription(
        &exec,
        &system(),
        failed_at + Duration::days(4),
        acme,
        SubscriptionChange::PaymentRecovered,
    )
    .await
    .unwrap();
    react(suspended_at).await;
    assert_eq!(state().await.status, Some(SubscriptionStatus::Active));
    assert_eq!(tenant_status().await, Some(TenantStatus::Active));
}

async fn the_free_plan_is_published_once_and_binds_tenants_without_a_subscription(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let acme = tenant(&exec).await;
    // No plan at all yet: nothing limits.
    assert_eq!(
        effective_limit(&exec, acme, LimitKey::Members, Utc::now())
            .await
            .unwrap(),
        Limit::Unlimited
    );
    seed_free_plan(&exec, Utc::now()).await.unwrap();
    let head = store.head().await.unwrap();
    seed_free_plan(&exec, Utc::now()).await.unwrap();
    assert_eq!(store.head().await.unwrap(), head, "published once");
    let free = exec
        .load::<Plan>(Plan::id_of(&PlanKey::free()))
        .await
        .unwrap()
        .state;
    assert_eq!(free.versions.len(), 1);
    assert_eq!(
        effective_limit(&exec, acme, LimitKey::Members, Utc::now())
            .await
            .unwrap(),
        Limit::At(5)
    );
}

/// Usage as metering will report it: here, figures the test records.
#[derive(Debug, Default)]
struct RecordedUsage(std::sync::Mutex<u64>);

#[async_trait::async_trait]
impl domain::usage::UsageFigures for RecordedUsage {
    async fn used(
        &self,
        _: domain::ids::TenantId,
        _: LimitKey,
        _: (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
    ) -> Result<u64, domain::usage::UsageError> {
        Ok(*self.0.lock().unwrap())
    }
}

async fn allowances_warn_owners_once_at_80_percent_and_refuse_at_100(db: Database) {
    use commands::billing::{AllowanceError, check_allowance};
    use domain::subscription::SubscriptionEvent;
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let vault =
        infra::crypto::SubjectKeyVault::new(db.clone(), &infra::crypto::MasterKey::generate());
    let credentials = infra::crypto::Argon2Credentials;
    seed_free_plan(&exec, Utc::now()).await.unwrap();
    // An owner with a sealed address, and her tenant on the free plan (5 GB a month).
    let ada = domain::ids::UserId::new_v7();
    commands::identity::sign_up(
        &exec,
        &vault,
        &credentials,
        &system(),
        Utc::now(),
        commands::identity::SignUp {
            user: ada,
            email: domain::user::Email::parse("ada@example.com").unwrap(),
            password: domain::user::NewPassword::parse("correct horse battery").unwrap(),
        },
    )
    .await
    .unwrap();
    let acme = create_tenant(
        &exec,
        &system(),
        Utc::now(),
        CreateTenant {
            name: TenantName::parse("Acme").unwrap(),
            slug: Slug::parse("acme-allowance").unwrap(),
            settings: TenantSettings::default(),
            founder: Founder::User(ada),
        },
    )
    .await
    .unwrap()
    .tenant;
    const GB: u64 = 1_000_000_000;
    let key = LimitKey::BandwidthBytesPerMonth;
    let usage = RecordedUsage::default();
    let now = Utc::now();
    *usage.0.lock().unwrap() = 3 * GB;
    let allowed = check_allowance(&exec, &usage, now, acme, (key, GB / 2))
        .await
        .unwrap();
    assert_eq!(allowed.limit, Limit::At(5 * GB));
    let warnings = async || {
        store
            .read_stream(
                &domain::event::StreamId::for_aggregate(Subscription::CATEGORY, acme.as_uuid()),
                domain::event_store::StreamRead::forwards(),
            )
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| {
                match domain::aggregate::decode_event::<Subscription>(
                    &e.event_type,
                    e.schema_version,
                    e.payload,
                )
                .unwrap()
                {
                    SubscriptionEvent::AllowanceWarned { mails, used, .. } => Some((mails, used)),
                    _ => None,
                }
            })
            .collect::<Vec<_>>()
    };
    assert!(warnings().await.is_empty(), "70% warns nobody");
    // Passing 80%: one warning, one mail for the owner; again in the same period: nothing.
    check_allowance(&exec, &usage, now, acme, (key, GB))
        .await
        .unwrap();
    *usage.0.lock().unwrap() = 4 * GB + GB / 2;
    check_allowance(&exec, &usage, now, acme, (key, 1))
        .await
        .unwrap();
    let warned = warnings().await;
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0].1, 4 * GB);
    assert_eq!(warned[0].0.len(), 1);
    assert_eq!(
        warned[0].0[0].subject,
        domain::ids::SubjectId::from_uuid(ada.as_uuid())
    );
    // At 100%: refused, saying until when.
    *usage.0.lock().unwrap() = 5 * GB;
    let refused = check_allowance(&exec, &usage, now, acme, (key, 1)).await;
    assert!(
        matches!(
            refused,
            Err(commands::CommandError::Rejected(AllowanceError::Exhausted { used, .. })) if used == 5 * GB
        ),
        "{refused:?}"
    );
    // An operator lifts the limit: nothing is refused any more.
    change_subscription(
        &exec,
        &system(),
        now,
        acme,
        SubscriptionChange::Override {
            key,
            limit: Some(domain::subscription::LimitOverride {
                limit: Limit::Unlimited,
                expires_at: None,
            }),
        },
    )
    .await
    .unwrap();
    check_allowance(&exec, &usage, now, acme, (key, GB))
        .await
        .unwrap();
}
