//! Tenantry's pure model: identifiers, the event envelope and the ports that adapters implement.
//!
//! This crate owns the vocabulary every other crate speaks: [`ids`] (newtypes such as
//! [`ids::TenantId`]), [`event`] (the envelope: [`event::NewEvent`] going in,
//! [`event::RecordedEvent`] coming out) and [`event_store`] (the [`event_store::EventStore`] port
//! with its append/read/subscribe contract), [`aggregate`] (the decide/evolve shape, stored
//! event encoding and upcasters) and the aggregates themselves ([`tenant`], [`user`] with its
//! e-mail claims, [`access`]: a tenant's members, invites and API keys; [`plan`]: the plan
//! catalog; [`subscription`]: a tenant's subscription; [`metering`]: meters and usage events), and the ports for
//! personal data ([`personal_data`]), e-mail ([`mailer`]; the outbox's queued mails and deliveries in [`mail`]), API key use ([`key_usage`]) and
//! password and token hashing ([`credentials`]), usage against allowances ([`usage`]), the audit trail's entries, exports and ledger ([`audit`]), the payment provider ([`payments`]), session tokens ([`session_token`]), and the [`reactor`] port
//! (what follows the log and acts on it).
//!
//! It must never depend on a database, HTTP, runtime or SDK crate: it does no I/O. The
//! `testing` feature adds given/when/then for aggregate tests and the event-store conformance
//! suite (and the async runtime it needs) for test code only; the dependency-direction test
//! checks the normal dependency set.

pub mod access;
pub mod aggregate;
pub mod audit;
pub mod credentials;
pub mod event;
pub mod event_store;
pub mod ids;
pub mod key_usage;
pub mod mail;
pub mod mailer;
pub mod metering;
pub mod payments;
pub mod personal_data;
pub mod plan;
pub mod reactor;
pub mod session_token;
pub mod snapshot;
pub mod subscription;
pub mod tenant;
pub mod usage;
pub mod user;
pub mod webhook;

// Under `cfg(test)` too, for the aggregates' own given/when/then tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
