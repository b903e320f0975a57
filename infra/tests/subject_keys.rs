//! The per-subject key vault on both backends: sealed values open only for their subject,
//! and forgetting a subject makes its values unreadable for good.
#![expect(clippy::unwrap_used, reason = "tests")]

use domain::ids::SubjectId;
use domain::personal_data::{PersonalData, PersonalDataError, Sealed};
use infra::crypto::{MasterKey, SubjectKeyVault};
use infra::database::Database;

async fn seals_opens_and_shreds(db: Database) {
    let master = MasterKey::generate();
    let vault = SubjectKeyVault::new(db.clone(), &master);
    let (ada, bob) = (SubjectId::new_v7(), SubjectId::new_v7());
    let sealed = vault.seal(ada, "ada@example.com").await.unwrap();
    assert!(
        !sealed.as_str().contains("ada"),
        "sealed text reveals nothing"
    );
    assert_ne!(
        sealed,
        vault.seal(ada, "ada@example.com").await.unwrap(),
        "random nonces"
    );
    assert_eq!(
        vault.open(ada, &sealed).await.unwrap().as_deref(),
        Some("ada@example.com")
    );
    vault.seal(bob, "bob").await.unwrap();
    assert!(matches!(
        vault.open(bob, &sealed).await,
        Err(PersonalDataError::Damaged)
    ));
    assert!(matches!(
        vault
            .open(ada, &Sealed::from_sealed_text("pd1:AAAA".into()))
            .await,
        Err(PersonalDataError::Damaged)
    ));

    // A second process (fresh cache) with the same master key reads the same values.
    let other = SubjectKeyVault::new(db.clone(), &master);
    assert_eq!(
        other.open(ada, &sealed).await.unwrap().as_deref(),
        Some("ada@example.com")
    );
    assert_eq!(
        other.blind_index("email", "x"),
        vault.blind_index("email", "x")
    );
    assert_ne!(
        other.blind_index("email", "x"),
        other.blind_index("email", "y")
    );

    vault.forget(ada).await.unwrap();
    assert_eq!(vault.open(ada, &sealed).await.unwrap(), None);
    assert!(matches!(
        vault.seal(ada, "again").await,
        Err(PersonalDataError::Forgotten)
    ));
    let fresh = SubjectKeyVault::new(db, &master);
    assert_eq!(
        fresh.open(ada, &sealed).await.unwrap(),
        None,
        "the key is gone from the database"
    );
}

infra::on_both_backends!(seals_opens_and_shreds);
