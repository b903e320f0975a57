//! Given/when/then tests of the plan catalog.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;
use crate::testing::aggregate::{at, given};

fn publish(draft: PlanDraft) -> PlanCommand {
    PlanCommand::Publish {
        key: PlanKey::parse("pro").unwrap(),
        draft,
        at: at(1),
    }
}

fn pro() -> PlanDraft {
    let mut draft = PlanDraft::free();
    draft.name = PlanName::parse("Pro").unwrap();
    draft.prices = vec![Price {
        interval: Interval::Month,
        amount: 2_900,
        currency: Currency::parse("EUR").unwrap(),
    }];
    draft.trial_days = 14;
    draft
}

#[test]
fn versions_are_numbered_and_never_change() {
    let first = given::<Plan>([]).when(&publish(pro())).then_accepted();
    assert_eq!(first.state().latest().map(|v| v.version), Some(1));
    // The same content again publishes nothing.
    first.when(&publish(pro())).then_nothing();
    let mut cheaper = pro();
    cheaper.prices[0].amount = 1_900;
    let second = first.when(&publish(cheaper)).then_accepted();
    assert_eq!(second.state().latest().map(|v| v.version), Some(2));
    assert_eq!(
        second.state().version(1).map(|v| v.prices[0].amount),
        Some(2_900),
        "version 1 is as published"
    );
}

#[test]
fn bad_drafts_are_refused() {
    let mut none = pro();
    none.prices.clear();
    given::<Plan>([])
        .when(&publish(none))
        .then_refused(PlanError::NoPrice);
    let mut mixed = pro();
    mixed.prices.push(Price {
        interval: Interval::Year,
        amount: 29_000,
        currency: Currency::parse("usd").unwrap(),
    });
    given::<Plan>([])
        .when(&publish(mixed))
        .then_refused(PlanError::MixedCurrencies);
    let mut twice = pro();
    twice.prices.push(twice.prices[0].clone());
    given::<Plan>([])
        .when(&publish(twice))
        .then_refused(PlanError::DuplicatePrice(Interval::Month));
    assert_eq!(PlanKey::parse("Pro"), Err(PlanError::InvalidKey));
    assert_eq!(Currency::parse("euro"), Err(PlanError::InvalidCurrency));
    assert_eq!(Feature::parse("SSO"), Err(PlanError::InvalidFeature));
    assert_eq!(
        Overage::parse("bandwidth.bytes", 10, 0),
        Err(PlanError::InvalidOverage)
    );
    // Only a meter that feeds a monthly allowance bills overage.
    assert_eq!(
        Overage::parse("api.calls", 10, 1),
        Err(PlanError::InvalidOverage)
    );
}

#[test]
fn overage_is_charged_per_started_block() {
    let gb = Overage::parse("bandwidth.bytes", 10, 1_000_000_000).unwrap();
    assert_eq!(gb.allowance(), Some(LimitKey::BandwidthBytesPerMonth));
    assert_eq!(gb.charge(0), 0);
    assert_eq!(gb.charge(1), 10);
    assert_eq!(gb.charge(1_000_000_000), 10);
    assert_eq!(gb.charge(2_500_000_000), 30);
}

#[test]
fn a_retired_plan_comes_back_when_published_again() {
    let published = given::<Plan>([]).when(&publish(pro())).then_accepted();
    let retired = published
        .when(&PlanCommand::Retire { at: at(2) })
        .then_accepted();
    assert!(retired.state().retired);
    let mut changed = pro();
    changed.trial_days = 7;
    let back = retired.when(&publish(changed)).then_accepted();
    assert!(!back.state().retired);
    given::<Plan>([])
        .when(&PlanCommand::Retire { at: at(2) })
        .then_refused(PlanError::NotFound);
}

#[test]
fn limits_allow_up_to_their_value() {
    assert!(Limit::At(5).allows(4, 1));
    assert!(!Limit::At(5).allows(5, 1));
    assert!(Limit::Unlimited.allows(u64::MAX, 1));
    let free = PlanDraft::free();
    assert_eq!(free.limits.get(&LimitKey::Members), Some(&Limit::At(5)));
}
