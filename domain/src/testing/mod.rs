//! Test support shared by every crate: the event-store conformance suite that each backend
//! runs (see [`event_store_conformance!`](crate::event_store_conformance)).

pub mod conformance;
