//! Given/when/then for aggregate tests, written once for every aggregate:
//!
//! ```
//! # use domain::ids::TenantId;
//! # use domain::tenant::*;
//! use domain::testing::aggregate::{at, given};
//! # let provisioned = TenantEvent::TenantProvisioned {
//! #     tenant_id: TenantId::new_v7(),
//! #     name: TenantName::parse("Acme").expect("name"),
//! #     slug: Slug::parse("acme").expect("slug"),
//! #     settings: TenantSettings::default(),
//! #     at: at(0),
//! # };
//! given::<Tenant>([provisioned])
//!     .when(&TenantCommand::Reactivate { at: at(2) })
//!     .then_refused(TenantError::NotSuspended);
//! ```
//!
//! `given` replays history into a state; `when` decides a command on it; the `then_*` methods
//! assert the outcome and (when events were decided) hand back the state after them, so a
//! scenario can go on. [`Given::state`] is the state at that point, for tests that ask it
//! questions (`session_is_live`, `authorize`) rather than send it commands.

use crate::aggregate::Aggregate;
use chrono::{DateTime, TimeZone, Utc};
use std::fmt::Debug;

/// A fixed time on a fixed day (2026-01-01), `hour` o'clock: tests speak in hours.
pub fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, hour, 0, 0)
        .single()
        .expect("a valid hour of the day")
}

/// The state after `history`, replayed from the default.
pub fn given<A: Aggregate>(history: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        state: A::default(),
    }
    .and(history)
}

/// An aggregate's state at one point of a scenario.
#[derive(Debug, Clone)]
pub struct Given<A> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// More history on top of this state.
    #[must_use]
    pub fn and(mut self, history: impl IntoIterator<Item = A::Event>) -> Self {
        for event in history {
            self.state.evolve(&event);
        }
        self
    }

    /// The state at this point.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides `command` on this state; the `then_*` methods check what came of it.
    pub fn when(&self, command: &A::Command) -> When<A> {
        When {
            outcome: self.state.decide(command),
            state: self.state.clone(),
        }
    }
}

/// A command decided on a state, waiting for its outcome to be checked.
#[derive(Debug)]
#[must_use = "a decision nobody checks tests nothing"]
pub struct When<A: Aggregate> {
    state: A,
    outcome: Result<Vec<A::Event>, A::Error>,
}

impl<A> When<A>
where
    A: Aggregate,
    A::Event: PartialEq + Debug,
    A::Error: PartialEq + Debug,
{
    /// Asserts that exactly `expected` was decided; the state after those events.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> Given<A> {
        let expected: Vec<_> = expected.into_iter().collect();
        assert_eq!(self.outcome.as_ref(), Ok(&expected), "decided events");
        Given { state: self.state }.and(expected)
    }

    /// Asserts that the command was accepted and changed nothing (an idempotent repeat).
    #[track_caller]
    pub fn then_nothing(self) -> Given<A> {
        self.then([])
    }

    /// Asserts that the command was refused with `expected`.
    #[track_caller]
    pub fn then_refused(self, expected: A::Error) {
        assert_eq!(self.outcome.map(|_| ()), Err(expected), "refusal");
    }

    /// Asserts that the command was accepted and decided at least one event, whichever
    /// (for scenarios that care about what follows, not the events' contents); the state
    /// after them.
    #[track_caller]
    pub fn then_accepted(self) -> Given<A> {
        let events = match self.outcome {
            Ok(events) => events,
            Err(e) => panic!("the command was refused: {e:?}"),
        };
        assert!(
            !events.is_empty(),
            "the command was accepted but changed nothing"
        );
        Given { state: self.state }.and(events)
    }
}

#[cfg(test)]
mod tests {
    //! The helpers must fail when the outcome is not the one named, or every aggregate test
    //! built on them would pass whatever the aggregate does.
    use super::*;
    use crate::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};

    fn reactivate() -> TenantCommand {
        TenantCommand::Reactivate { at: at(1) }
    }

    #[test]
    #[should_panic(expected = "refusal")]
    fn then_refused_fails_on_another_error() {
        given::<Tenant>([])
            .when(&reactivate())
            .then_refused(TenantError::Closed);
    }

    #[test]
    #[should_panic(expected = "decided events")]
    fn then_fails_on_a_refusal() {
        given::<Tenant>([])
            .when(&reactivate())
            .then([TenantEvent::TenantReactivated { at: at(1) }]);
    }

    #[test]
    #[should_panic(expected = "refused")]
    fn then_accepted_fails_on_a_refusal() {
        given::<Tenant>([]).when(&reactivate()).then_accepted();
    }

    #[test]
    #[should_panic(expected = "decided events")]
    fn then_nothing_fails_on_events() {
        given::<Tenant>([])
            .when(&TenantCommand::Provision {
                tenant_id: crate::ids::TenantId::from_uuid(uuid::Uuid::nil()),
                name: crate::tenant::TenantName::parse("Acme").expect("name"),
                slug: crate::tenant::Slug::parse("acme").expect("slug"),
                settings: crate::tenant::TenantSettings::default(),
                at: at(0),
            })
            .then_nothing();
    }

    #[test]
    fn then_hands_back_the_state_after_the_events() {
        let provisioned = given::<Tenant>([]).when(&TenantCommand::Provision {
            tenant_id: crate::ids::TenantId::from_uuid(uuid::Uuid::nil()),
            name: crate::tenant::TenantName::parse("Acme").expect("name"),
            slug: crate::tenant::Slug::parse("acme").expect("slug"),
            settings: crate::tenant::TenantSettings::default(),
            at: at(0),
        });
        let state = provisioned.then_accepted();
        assert!(state.state().status.is_some());
    }
}
