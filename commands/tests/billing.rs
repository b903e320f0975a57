//! The billing use cases against real stores (SQLite and PostgreSQL), with the clock in the
//! test's hands: a trial becomes active at its end, a failed payment runs out its grace and
//! the tenant is suspended, a recovered payment reactivates it, renewals written by two
//! processes at once write once, and the free plan is published once.
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::{Duration, TimeZone, Utc};
use commands::billing::{
    SubscriptionChange, SuspendUnpaid, change_subscription, effective_limit, publish_plan, renew,
    seed_free_plan, subscribe,
};
use commands::tenancy::{CreateTenant, Founder, create_tenant};
use commands::{CommandContext, Executor};
use domain::aggregate::Aggregate;
use domain::event::{Actor, Position};
use domain::plan::{Interval, Limit, LimitKey, Plan, PlanDraft, PlanKey, PlanName};
use domain::reactor::Reactor;
use domain::subscription::{Subscription, SubscriptionStatus};
use domain::tenant::{Slug, Tenant, TenantName, TenantSettings, TenantStatus};
use infra::database::Database;

infra::on_both_backends!(
    a_subscription_lives_through_trial_failed_payment_grace_and_recovery,
    the_free_plan_is_published_once_and_binds_tenants_without_a_subscription,
);

fn system() -> CommandContext {
    CommandContext::new(Actor::system("test"))
}

async fn tenant(exec: &Executor) -> domain::ids::TenantId {
    create_tenant(
        exec,
        &system(),
        Utc::now(),
        CreateTenant {
            name: TenantName::parse("Acme").unwrap(),
            slug: Slug::parse(&format!("t-{}", uuid::Uuid::now_v7().simple())).unwrap(),
            settings: TenantSettings::default(),
            founder: Founder::Operator,
        },
    )
    .await
    .unwrap()
    .tenant
}

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
