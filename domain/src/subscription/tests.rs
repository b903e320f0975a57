//! Given/when/then tests of the subscription lifecycle, periods and proration.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;
use crate::plan::{Currency, Interval, PlanKey};
use crate::testing::aggregate::given;
use chrono::TimeZone;

fn utc(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).single().unwrap()
}

fn plan(key: &str) -> PlanRef {
    PlanRef {
        key: PlanKey::parse(key).unwrap(),
        version: 1,
    }
}

fn eur(amount: i64, interval: Interval) -> Price {
    Price {
        interval,
        amount,
        currency: Currency::parse("eur").unwrap(),
    }
}

fn tenant() -> TenantId {
    TenantId::from_uuid(uuid::Uuid::from_u128(7))
}

fn start(key: &str, amount: i64, trial_days: u32, at: DateTime<Utc>) -> SubscriptionCommand {
    SubscriptionCommand::Start {
        tenant: tenant(),
        plan: plan(key),
        price: eur(amount, Interval::Month),
        trial_days,
        at,
    }
}

#[test]
fn month_ends_clamp_and_periods_count_from_the_anchor() {
    let anchor = utc(2026, 1, 31);
    assert_eq!(add_months(anchor, 1), utc(2026, 2, 28));
    assert_eq!(add_months(anchor, 2), utc(2026, 3, 31));
    assert_eq!(
        add_months(utc(2028, 1, 31), 1),
        utc(2028, 2, 29),
        "leap year"
    );
    assert_eq!(add_months(anchor, 12), utc(2027, 1, 31));

    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, anchor))
        .then_accepted();
    assert_eq!(sub.state().period_end, Some(utc(2026, 2, 28)));
    let renewed = sub
        .when(&SubscriptionCommand::Renew {
            at: utc(2026, 2, 28),
        })
        .then_accepted();
    assert_eq!(renewed.state().period_start, Some(utc(2026, 2, 28)));
    assert_eq!(renewed.state().period_end, Some(utc(2026, 3, 31)));
    // Before the end, renewing does nothing.
    renewed
        .when(&SubscriptionCommand::Renew {
            at: utc(2026, 3, 30),
        })
        .then_nothing();
}

#[test]
fn a_trial_once_then_active_from_its_end() {
    let day0 = utc(2026, 3, 1);
    let trial = given::<Subscription>([])
        .when(&start("pro", 3_000, 14, day0))
        .then_accepted();
    assert_eq!(trial.state().status, Some(SubscriptionStatus::Trialing));
    assert_eq!(trial.state().trial_ends_at, Some(utc(2026, 3, 15)));
    let active = trial
        .when(&SubscriptionCommand::Renew {
            at: utc(2026, 3, 15),
        })
        .then_accepted();
    assert_eq!(active.state().status, Some(SubscriptionStatus::Active));
    assert_eq!(active.state().period_end, Some(utc(2026, 4, 15)));
    // Cancelled and started again: no second trial.
    let cancelled = active
        .when(&SubscriptionCommand::Cancel {
            at_period_end: false,
            at: utc(2026, 3, 20),
        })
        .then_accepted();
    let again = cancelled
        .when(&start("pro", 3_000, 14, utc(2026, 3, 21)))
        .then_accepted();
    assert_eq!(again.state().status, Some(SubscriptionStatus::Active));
    again
        .when(&start("pro", 3_000, 14, utc(2026, 3, 22)))
        .then_refused(SubscriptionError::AlreadySubscribed);
}

#[test]
fn an_upgrade_is_prorated_and_a_downgrade_waits_for_the_period_end() {
    // April has 30 days: 12:00 on April 16 leaves exactly half of the period.
    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted();
    let up = SubscriptionCommand::ChangePlan {
        plan: plan("business"),
        price: eur(9_001, Interval::Month),
        at: utc(2026, 4, 16),
    };
    let upgraded = sub.when(&up).then([SubscriptionEvent::PlanChanged {
        plan: plan("business"),
        price: eur(9_001, Interval::Month),
        proration: Some(Proration {
            credit: 1_500,
            charge: 4_501,
        }),
        at: utc(2026, 4, 16),
    }]);
    let down = SubscriptionCommand::ChangePlan {
        plan: plan("free"),
        price: eur(0, Interval::Month),
        at: utc(2026, 4, 20),
    };
    let scheduled = upgraded.when(&down).then_accepted();
    assert_eq!(
        scheduled.state().plan,
        Some(plan("business")),
        "still on it"
    );
    let renewed = scheduled
        .when(&SubscriptionCommand::Renew {
            at: utc(2026, 5, 1),
        })
        .then_accepted();
    assert_eq!(renewed.state().plan, Some(plan("free")));
    let other_currency = SubscriptionCommand::ChangePlan {
        plan: plan("usd"),
        price: Price {
            interval: Interval::Month,
            amount: 5_000,
            currency: Currency::parse("usd").unwrap(),
        },
        at: utc(2026, 5, 2),
    };
    renewed
        .when(&other_currency)
        .then_refused(SubscriptionError::CurrencyChange);
}

#[test]
fn cancel_at_period_end_can_be_resumed_before_it() {
    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted();
    let cancelling = sub
        .when(&SubscriptionCommand::Cancel {
            at_period_end: true,
            at: utc(2026, 4, 10),
        })
        .then_accepted();
    assert_eq!(cancelling.state().cancel_at, Some(utc(2026, 5, 1)));
    let resumed = cancelling
        .when(&SubscriptionCommand::Resume {
            at: utc(2026, 4, 11),
        })
        .then_accepted();
    assert_eq!(resumed.state().cancel_at, None);
    resumed
        .when(&SubscriptionCommand::Resume {
            at: utc(2026, 4, 12),
        })
        .then_refused(SubscriptionError::NothingToResume);
    let ended = cancelling
        .when(&SubscriptionCommand::Renew {
            at: utc(2026, 5, 1),
        })
        .then_accepted();
    assert_eq!(ended.state().status, Some(SubscriptionStatus::Cancelled));
}

#[test]
fn failed_payment_grace_suspension_and_recovery() {
    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted();
    let failed = sub
        .when(&SubscriptionCommand::RecordPaymentFailure {
            grace: Duration::days(7),
            at: utc(2026, 5, 1),
        })
        .then_accepted();
    assert_eq!(failed.state().status, Some(SubscriptionStatus::PastDue));
    failed
        .when(&SubscriptionCommand::ExpireGrace {
            at: utc(2026, 5, 7),
        })
        .then_nothing();
    let suspended = failed
        .when(&SubscriptionCommand::ExpireGrace {
            at: utc(2026, 5, 8),
        })
        .then_accepted();
    assert_eq!(
        suspended.state().status,
        Some(SubscriptionStatus::Suspended)
    );
    suspended
        .when(&SubscriptionCommand::ChangePlan {
            plan: plan("business"),
            price: eur(9_000, Interval::Month),
            at: utc(2026, 5, 9),
        })
        .then_refused(SubscriptionError::Suspended);
    let recovered = suspended
        .when(&SubscriptionCommand::RecordPaymentRecovery {
            at: utc(2026, 5, 9),
        })
        .then_accepted();
    assert_eq!(recovered.state().status, Some(SubscriptionStatus::Active));
}

#[test]
fn overrides_expire() {
    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted();
    let overridden = sub
        .when(&SubscriptionCommand::OverrideLimit {
            key: LimitKey::Members,
            limit: Some(LimitOverride {
                limit: Limit::At(50),
                expires_at: Some(utc(2026, 6, 1)),
            }),
            at: utc(2026, 4, 2),
        })
        .then_accepted();
    let state = overridden.state();
    assert_eq!(
        state.override_at(LimitKey::Members, utc(2026, 5, 1)),
        Some(Limit::At(50))
    );
    assert_eq!(state.override_at(LimitKey::Members, utc(2026, 6, 1)), None);
    assert_eq!(
        prorated(100, (utc(2026, 4, 1), utc(2026, 5, 1)), utc(2026, 3, 1)),
        100
    );
    assert_eq!(
        prorated(100, (utc(2026, 4, 1), utc(2026, 5, 1)), utc(2026, 6, 1)),
        0
    );
}

#[test]
fn an_older_payment_outcome_arriving_later_changes_nothing() {
    let recovered = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted()
        .when(&SubscriptionCommand::RecordPaymentFailure {
            grace: Duration::days(7),
            at: utc(2026, 5, 1),
        })
        .then_accepted()
        .when(&SubscriptionCommand::RecordPaymentRecovery {
            at: utc(2026, 5, 3),
        })
        .then_accepted();
    // The provider's failure notice of May 2 arrives after the recovery of May 3.
    recovered
        .when(&SubscriptionCommand::RecordPaymentFailure {
            grace: Duration::days(7),
            at: utc(2026, 5, 2),
        })
        .then_nothing();
    assert_eq!(recovered.state().status, Some(SubscriptionStatus::Active));
    // A newer failure counts.
    recovered
        .when(&SubscriptionCommand::RecordPaymentFailure {
            grace: Duration::days(7),
            at: utc(2026, 6, 1),
        })
        .then_accepted();
}

#[test]
fn a_paid_trial_ends_at_once_and_anchors_the_periods() {
    let trial = given::<Subscription>([])
        .when(&start("pro", 3_000, 14, utc(2026, 1, 31)))
        .then_accepted();
    assert_eq!(trial.state().status, Some(SubscriptionStatus::Trialing));
    let paid = trial
        .when(&SubscriptionCommand::EndTrial {
            at: utc(2026, 2, 3),
        })
        .then_accepted();
    let state = paid.state();
    assert_eq!(state.status, Some(SubscriptionStatus::Active));
    assert_eq!(state.trial_ends_at, None);
    assert_eq!(state.anchor, Some(utc(2026, 2, 3)));
    assert_eq!(state.period_end, Some(utc(2026, 3, 3)));
    // Only a trial ends.
    paid.when(&SubscriptionCommand::EndTrial {
        at: utc(2026, 2, 4),
    })
    .then_nothing();
}

#[test]
fn provider_links_are_recorded_once_and_a_new_start_drops_the_old_subscription() {
    let sub = given::<Subscription>([])
        .when(&start("pro", 3_000, 0, utc(2026, 4, 1)))
        .then_accepted();
    let link = SubscriptionCommand::LinkProvider {
        customer: "cus_1".into(),
        subscription: Some(("sub_1".into(), "si_1".into())),
        at: utc(2026, 4, 1),
    };
    let linked = sub.when(&link).then_accepted();
    assert_eq!(linked.state().provider_customer.as_deref(), Some("cus_1"));
    linked.when(&link).then_nothing();
    let cancelled = linked
        .when(&SubscriptionCommand::Cancel {
            at_period_end: false,
            at: utc(2026, 4, 2),
        })
        .then_accepted();
    // The ended subscription's link stays (the payments reactor ends it at the provider).
    assert!(cancelled.state().provider_subscription.is_some());
    let again = cancelled
        .when(&start("pro", 3_000, 0, utc(2026, 4, 3)))
        .then_accepted();
    assert_eq!(again.state().provider_subscription, None);
    assert_eq!(again.state().provider_customer.as_deref(), Some("cus_1"));
}

#[test]
fn an_allowance_is_reached_once_per_period() {
    let reach = |period_start| SubscriptionCommand::ReachAllowance {
        key: LimitKey::BandwidthBytesPerMonth,
        period_start,
        used: 5,
        limit: 5,
        mails: vec![],
        at: period_start,
    };
    let reached = given::<Subscription>([])
        .when(&reach(utc(2026, 4, 1)))
        .then_accepted();
    reached.when(&reach(utc(2026, 4, 1))).then_nothing();
    // The next period starts afresh.
    reached.when(&reach(utc(2026, 5, 1))).then_accepted();
}
