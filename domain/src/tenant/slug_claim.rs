//! The slug claim: the aggregate that keeps tenant slugs unique across the platform.

use super::{Slug, TenantError};
use crate::aggregate::Aggregate;
use crate::ids::TenantId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Namespace of slug claim ids (UUIDv5 of the slug).
const SLUGS: Uuid = Uuid::from_u128(0x5e7a_90c2_1b4d_4f8e_a36b_0d9c_72e1_48f5);

/// Keeps slugs unique: one stream per slug (`slug-<UUIDv5 of the slug>`), claimed in the
/// same atomic append as the tenant's provisioning. Slugs cannot be renamed, so a claim is
/// never released.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlugClaim {
    pub tenant: Option<TenantId>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SlugClaimEvent {
    SlugClaimed { tenant_id: TenantId },
}

impl SlugClaim {
    /// The id of `slug`'s claim stream.
    pub fn id_of(slug: &Slug) -> Uuid {
        Uuid::new_v5(&SLUGS, slug.as_str().as_bytes())
    }
}

impl Aggregate for SlugClaim {
    const CATEGORY: &'static str = "slug";
    type Command = TenantId;
    type Event = SlugClaimEvent;
    type Error = TenantError;

    fn decide(&self, tenant: &TenantId) -> Result<Vec<SlugClaimEvent>, TenantError> {
        match self.tenant {
            Some(owner) if owner == *tenant => Ok(vec![]),
            Some(_) => Err(TenantError::SlugTaken),
            None => Ok(vec![SlugClaimEvent::SlugClaimed { tenant_id: *tenant }]),
        }
    }

    fn evolve(&mut self, event: &SlugClaimEvent) {
        let SlugClaimEvent::SlugClaimed { tenant_id } = event;
        self.tenant = Some(*tenant_id);
    }
}
