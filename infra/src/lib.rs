//! Every adapter of Tenantry: the event stores (SQLite, PostgreSQL) and, as the areas grow,
//! the outside systems (Stripe, S3, MongoDB, SMTP, the vault).
//!
//! Layout: [`database`] opens and migrates the configured database; [`event_store`] holds
//! the two event-store adapters and what they share (group commit, the live tail);
//! [`snapshot_store`] keeps aggregate snapshots; [`crypto`] holds the master key, the
//! per-subject key vault (personal data), password and token hashing, session tokens and
//! TOTP; [`smtp`] sends e-mail; [`stripe`] is the payment provider.
//!
//! This is the only crate that names SDK crates; it must never depend on `api` or on the
//! binary. With the `testing` feature, [`testing`] provides fresh databases for tests.

pub mod audit;
pub mod crypto;
pub mod database;
pub mod event_store;
pub mod key_usage;
pub mod mail_files;
pub mod s3;
pub mod smtp;
pub mod snapshot_store;
pub mod stripe;
pub mod webhooks;

#[cfg(feature = "testing")]
pub mod projector_harness;
#[cfg(feature = "testing")]
pub mod testing;
