//! The read side. A [`Projector`] turns events into a read model; the [`runner`] feeds it the
//! global log in batches (catch-up, then live) and moves its checkpoint in the same transaction
//! as its writes, so a crash at any point neither loses nor doubles an effect. A read model's
//! tables belong to its projector: they are created per *generation* (`<name>_g<n>`) and read
//! through a view with the stable name, which a rebuild re-points.
//!
//! Each projector runs in one process at a time ([`lease`]): several `tenantry` processes on
//! one PostgreSQL share the projectors and take over from each other.
//!
//! Reactors run under the same runner ([`reacting`]); periodic jobs under leases of their own
//! ([`jobs`]).
//!
//! Read models live here, one file each with their DDL and queries for both backends side by
//! side ([`tenant_directory`], [`tenant_access`]: members, invites, API keys,
//! [`tenant_retention`]: closed tenants waiting for deletion, [`billing`]: plans,
//! subscriptions and entitlements). Tenant-scoped queries take a
//! [`scope::TenantScope`], which only an authorization decision makes; [`db`] holds the
//! backend dispatch. This crate depends on `domain` (ports, events) and sqlx, never on
//! `commands` or `infra`.

pub mod audit;
pub mod billing;
pub mod db;
pub mod jobs;
mod lease;
mod projector;
pub mod read_your_writes;
pub mod runner;
pub mod scope;
pub mod tenant_access;
pub mod tenant_directory;
pub mod tenant_retention;
pub mod usage;

pub use db::{ReadDb, ReadTx};
pub use projector::{ProjectionError, Projector, decode, reacting};

/// The error read-model queries return.
pub type QueryError = sqlx::Error;
