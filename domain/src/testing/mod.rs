//! Test support shared by every crate: given/when/then for aggregate tests ([`aggregate`]), the
//! golden-file check of stored events (`golden`, feature `testing`) and
//! the event-store conformance suite that each backend runs (see
//! [`event_store_conformance!`](crate::event_store_conformance), feature `testing`).

pub mod aggregate;
#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod golden;
