//! Given/when/then tests of the TenantAccess aggregate.

use super::*;
use crate::personal_data::Sealed;
use crate::testing::aggregate::{Given, at, given};
use crate::user::SecretHash;
use uuid::Uuid;

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

fn sealed() -> Sealed {
    Sealed::from_sealed_text("sealed".into())
}

/// A founded tenant whose members (by number) hold these roles.
fn with_members(members: &[(u128, Role)]) -> Given<TenantAccess> {
    given(members.iter().map(|(n, role)| AccessEvent::MemberAdded {
        user_id: user(*n),
        email: sealed(),
        role: *role,
        invite_id: None,
        at: at(0),
    }))
}

fn change(by: u128, who: u128, role: Role) -> AccessCommand {
    AccessCommand::ChangeRole {
        by: Accessor::User(user(by)),
        user: user(who),
        role,
        at: at(1),
    }
}

#[test]
fn the_last_owner_can_be_neither_demoted_nor_removed() {
    let access = with_members(&[(1, Role::Owner), (2, Role::Admin)]);
    access
        .when(&change(1, 1, Role::Admin))
        .then_refused(AccessError::LastOwner);
    let leave = AccessCommand::RemoveMember {
        by: Accessor::User(user(1)),
        user: user(1),
        at: at(1),
    };
    access.when(&leave).then_refused(AccessError::LastOwner);
    with_members(&[(1, Role::Owner), (3, Role::Owner)])
        .when(&change(1, 1, Role::Admin))
        .then_accepted();
}

#[test]
fn roles_bound_what_members_may_do() {
    let access = with_members(&[
        (1, Role::Owner),
        (2, Role::Admin),
        (3, Role::Member),
        (4, Role::Viewer),
    ]);
    // Admins cannot touch owners, nor make them.
    access
        .when(&change(2, 1, Role::Viewer))
        .then_refused(AccessError::Forbidden);
    access
        .when(&change(2, 3, Role::Owner))
        .then_refused(AccessError::Forbidden);
    access.when(&change(2, 3, Role::Admin)).then_accepted();
    // Members manage nobody.
    access
        .when(&change(3, 4, Role::Member))
        .then_refused(AccessError::Forbidden);
    // Strangers learn nothing.
    access
        .when(&change(9, 4, Role::Member))
        .then_refused(AccessError::NotFound);
    assert_eq!(
        access
            .state()
            .authorize(Accessor::User(user(4)), Permission::Write),
        Err(AccessError::Forbidden)
    );
    assert_eq!(
        access
            .state()
            .authorize(Accessor::User(user(4)), Permission::Read),
        Ok(Role::Viewer)
    );
}

#[test]
fn api_keys_act_within_their_scope_until_revoked() {
    let key = ApiKeyId::from_uuid(Uuid::from_u128(7));
    let create = AccessCommand::CreateApiKey {
        by: Accessor::User(user(1)),
        key_id: key,
        name: "ci".into(),
        scope: ApiKeyScope::ReadOnly,
        secret: SecretHash::new("h".into()),
        max_keys: crate::plan::Limit::Unlimited,
        at: at(1),
    };
    // Owners create keys.
    let access = with_members(&[(1, Role::Owner)])
        .when(&create)
        .then_accepted();
    let by_key = Accessor::ApiKey(key);
    assert_eq!(
        access.state().authorize(by_key, Permission::Read),
        Ok(Role::Viewer)
    );
    assert_eq!(
        access.state().authorize(by_key, Permission::Write),
        Err(AccessError::Forbidden)
    );
    let escalate = AccessCommand::CreateApiKey {
        by: by_key,
        key_id: ApiKeyId::from_uuid(Uuid::from_u128(8)),
        name: "more".into(),
        scope: ApiKeyScope::Admin,
        secret: SecretHash::new("h".into()),
        max_keys: crate::plan::Limit::Unlimited,
        at: at(1),
    };
    access
        .when(&escalate)
        .then_refused(AccessError::KeysCannotCreateKeys);
    let revoke = AccessCommand::RevokeApiKey {
        by: Accessor::User(user(1)),
        key_id: key,
        at: at(2),
    };
    let revoked = access.when(&revoke).then_accepted();
    assert_eq!(
        revoked.state().authorize(by_key, Permission::Read),
        Err(AccessError::NotFound)
    );
}

#[test]
fn an_invite_is_accepted_once_by_its_addressee() {
    let invite_id = InviteId::from_uuid(Uuid::from_u128(5));
    let invite = AccessCommand::Invite {
        by: Accessor::User(user(1)),
        invite_id,
        email: sealed(),
        email_index: Uuid::from_u128(42),
        role: Role::Member,
        token: SecretHash::new("t".into()),
        expires_at: at(5),
        mail: crate::mail::QueuedMail {
            mail_id: Uuid::from_u128(6),
            subject: crate::ids::SubjectId::from_uuid(invite_id.as_uuid()),
            to: sealed(),
            kind: crate::mail::MailKind::Invite {
                tenant_id: crate::ids::TenantId::from_uuid(Uuid::from_u128(7)),
                role: Role::Member,
            },
            token: Some(sealed()),
            expires_at: Some(at(5)),
        },
        at: at(1),
    };
    let invited = with_members(&[(1, Role::Owner)])
        .when(&invite)
        .then_accepted();
    let accept = |index: u128, token: &str, when: u32| AccessCommand::AcceptInvite {
        invite_id,
        token: SecretHash::new(token.into()),
        user: user(2),
        user_email: sealed(),
        user_email_index: Uuid::from_u128(index),
        max_members: crate::plan::Limit::Unlimited,
        at: at(when),
    };
    invited
        .when(&accept(43, "t", 2))
        .then_refused(AccessError::InviteForAnotherEmail);
    invited
        .when(&accept(42, "x", 2))
        .then_refused(AccessError::InvalidInvite);
    // Expired.
    invited
        .when(&accept(42, "t", 6))
        .then_refused(AccessError::InvalidInvite);
    let joined = invited.when(&accept(42, "t", 2)).then_accepted();
    assert_eq!(
        joined.state().role_of(Accessor::User(user(2))),
        Some(Role::Member)
    );
    // Used.
    joined
        .when(&accept(42, "t", 2))
        .then_refused(AccessError::InvalidInvite);
}

#[test]
fn revoking_an_invite_the_tenant_does_not_have_is_not_found() {
    let owner = Accessor::User(UserId::from_uuid(Uuid::from_u128(1)));
    let founded = given::<TenantAccess>([AccessEvent::MemberAdded {
        user_id: UserId::from_uuid(Uuid::from_u128(1)),
        email: Sealed::from_sealed_text("sealed".into()),
        role: Role::Owner,
        invite_id: None,
        at: at(0),
    }]);
    founded
        .when(&AccessCommand::RevokeInvite {
            by: owner,
            invite_id: InviteId::from_uuid(Uuid::from_u128(9)),
            at: at(1),
        })
        .then_refused(AccessError::NoSuchInvite);
}

#[test]
fn a_key_acts_with_the_lesser_of_its_scope_and_its_creators_role() {
    let key = ApiKeyId::from_uuid(Uuid::from_u128(7));
    let by_key = Accessor::ApiKey(key);
    let created = with_members(&[(1, Role::Owner), (2, Role::Admin)])
        .when(&AccessCommand::CreateApiKey {
            by: Accessor::User(user(2)),
            key_id: key,
            name: "deploy".into(),
            scope: ApiKeyScope::ReadWrite,
            secret: SecretHash::new("h".into()),
            max_keys: crate::plan::Limit::Unlimited,
            at: at(1),
        })
        .then_accepted();
    assert_eq!(created.state().role_of(by_key), Some(Role::Member));
    // The creator demoted to viewer: the key can only read now.
    let demoted = created.when(&change(1, 2, Role::Viewer)).then_accepted();
    assert_eq!(demoted.state().role_of(by_key), Some(Role::Viewer));
    assert_eq!(
        demoted.state().authorize(by_key, Permission::Write),
        Err(AccessError::Forbidden)
    );
    // The creator removed: the key stops.
    let removed = demoted
        .when(&AccessCommand::RemoveMember {
            by: Accessor::User(user(1)),
            user: user(2),
            at: at(3),
        })
        .then_accepted();
    assert_eq!(removed.state().role_of(by_key), None);
    assert_eq!(
        removed.state().authorize(by_key, Permission::Read),
        Err(AccessError::NotFound)
    );
}
