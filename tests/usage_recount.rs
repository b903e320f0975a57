//! Usage ingestion and aggregation on both backends, checked against a brute-force recount:
//! random batches with duplicates (across and within batches), out-of-order, late, future
//! and invalid events; every fate and every total (each meter, each aggregation, hours, days
//! and the billing period) must equal what the raw events say, live and after a rebuild.
#![expect(clippy::unwrap_used, reason = "tests")]

use chrono::{DateTime, Duration, TimeZone, Utc};
use commands::metering::{IngestRules, UsageFate, UsageInput, record_usage};
use commands::tenancy::{CreateTenant, Founder, create_tenant};
use commands::{CommandContext, Executor};
use domain::access::{Permission, TenantAccess};
use domain::event::Actor;
use domain::ids::{TenantId, UserId};
use domain::metering::{CATALOG, Meter};
use domain::tenant::{Slug, TenantName, TenantSettings};
use infra::database::Database;
use projections::runner::{self, RunnerConfig};
use projections::tenant_access::TenantScope;
use projections::usage::{Bucket, UsageReadModel};
use std::collections::HashSet;
use std::sync::Arc;

infra::on_both_backends!(every_fate_and_total_matches_a_brute_force_recount);

/// A small deterministic generator (xorshift), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().unwrap()
}

/// What the rules say of one event, recomputed from scratch (no subscription: calendar
/// months; grace 3 days; skew 5 minutes).
fn expected_refusal(e: &UsageInput, now: DateTime<Utc>) -> Option<&'static str> {
    let meter = Meter::find(&e.meter)?;
    if e.value < 0 && meter.key != "api.calls" {
        return Some("negative");
    }
    if meter.needs_key && e.key.is_none() {
        return Some("key");
    }
    if e.timestamp > now + Duration::minutes(5) {
        return Some("future");
    }
    // The end of the timestamp's calendar month, plus the grace.
    let month_end = if e.timestamp < utc(2026, 2, 1, 0) {
        utc(2026, 2, 1, 0)
    } else if e.timestamp < utc(2026, 3, 1, 0) {
        utc(2026, 3, 1, 0)
    } else {
        utc(2026, 4, 1, 0)
    };
    (now > month_end + Duration::days(3)).then_some("late")
}

async fn every_fate_and_total_matches_a_brute_force_recount(db: Database) {
    let store = db.event_store().await.unwrap();
    let exec = Executor::new(store.clone());
    let owner = UserId::new_v7();
    let ctx = CommandContext::new(Actor::system("test"));
    let vault =
        infra::crypto::SubjectKeyVault::new(db.clone(), &infra::crypto::MasterKey::generate());
    commands::identity::sign_up(
        &exec,
        &vault,
        &infra::crypto::Argon2Credentials,
        &CommandContext::new(Actor::system("test")),
        Utc::now(),
        commands::identity::SignUp {
            user: owner,
            email: domain::user::Email::parse("ada@example.com").unwrap(),
            password: domain::user::NewPassword::parse("correct horse battery").unwrap(),
        },
    )
    .await
    .unwrap();
    let tenant: TenantId = create_tenant(
        &exec,
        &CommandContext::new(Actor::system("test")),
        Utc::now(),
        CreateTenant {
            name: TenantName::parse("Acme").unwrap(),
            slug: Slug::parse(&format!("t-{}", uuid::Uuid::now_v7().simple())).unwrap(),
            settings: TenantSettings::default(),
            founder: Founder::User(owner),
        },
    )
    .await
    .unwrap()
    .tenant;
    let access = exec
        .load::<TenantAccess>(tenant.as_uuid())
        .await
        .unwrap()
        .state;
    let scope = TenantScope::from(
        &access
            .grant(
                tenant,
                domain::access::Accessor::User(owner),
                Permission::Read,
            )
            .unwrap(),
    );

    // Now is March 2, noon: February's events are within the grace, January's are late.
    let now = utc(2026, 3, 2, 12);
    let from = utc(2026, 1, 28, 0);
    let span = (now + Duration::minutes(10) - from)
        .num_seconds()
        .unsigned_abs();
    let mut rng = Rng(0x5eed_u64 ^ u64::from(tenant.as_uuid().as_u128() as u32 | 1));
    let mut meters: Vec<&str> = CATALOG.iter().map(|m| m.key).collect();
    meters.push("no.such.meter");
    let events: Vec<UsageInput> = (0..700)
        .map(|_| {
            let meter = meters[rng.below(meters.len() as u64) as usize].to_owned();
            UsageInput {
                // 500 ids for 700 events: many duplicates, some within one batch.
                id: format!("evt-{}", rng.below(500)),
                meter,
                value: rng.below(1_000) as i64 - if rng.below(20) == 0 { 2_000 } else { 0 },
                key: (rng.below(8) != 0).then(|| format!("user-{}", rng.below(25))),
                timestamp: from + Duration::seconds(rng.below(span) as i64),
            }
        })
        .collect();

    // Brute force: each event's fate in submission order, and the counted events.
    let mut counted_ids = HashSet::new();
    let mut expected = Vec::new();
    let mut counted: Vec<&UsageInput> = Vec::new();
    for e in &events {
        let fate = match expected_refusal(e, now) {
            _ if Meter::find(&e.meter).is_none() => "refused",
            Some(_) => "refused",
            None if counted_ids.contains(&e.id) => "duplicate",
            None => {
                counted_ids.insert(e.id.clone());
                counted.push(e);
                "counted"
            }
        };
        expected.push(fate);
    }

    // Recorded in random batches, some of them sent twice (a client's retry).
    let rules = IngestRules::default();
    let mut fates = Vec::new();
    let mut at = 0;
    while at < events.len() {
        let size = (1 + rng.below(60) as usize).min(events.len() - at);
        let batch = &events[at..at + size];
        let answer = record_usage(&exec, &ctx, now, tenant, rules, batch)
            .await
            .unwrap();
        if rng.below(4) == 0 {
            let again = record_usage(&exec, &ctx, now, tenant, rules, batch)
                .await
                .unwrap();
            for (first, second) in answer.iter().zip(&again) {
                match first {
                    UsageFate::Refused(_) => assert!(matches!(second, UsageFate::Refused(_))),
                    _ => assert!(matches!(second, UsageFate::Duplicate { .. }), "{second:?}"),
                }
            }
        }
        fates.extend(answer);
        at += size;
    }
    let got: Vec<&str> = fates
        .iter()
        .map(|f| match f {
            UsageFate::Counted { .. } => "counted",
            UsageFate::Duplicate { .. } => "duplicate",
            UsageFate::Refused(_) => "refused",
        })
        .collect();
    assert_eq!(got, expected, "every event's fate");
    for (fate, e) in fates.iter().zip(&events) {
        if let (UsageFate::Refused(reason), Some(why)) = (fate, expected_refusal(e, now)) {
            let text = reason.to_string();
            let mentions = match why {
                "negative" => "negative",
                "key" => "key",
                "future" => "ahead",
                _ => "too late",
            };
            assert!(text.contains(mentions), "{text} for {why}");
        }
    }
    assert!(got.iter().filter(|f| **f == "duplicate").count() > 50);
    assert!(got.iter().filter(|f| **f == "refused").count() > 50);

    // The projection, live and then rebuilt, against the brute-force totals.
    let head = store.head().await.unwrap();
    let read_db = db.read_db();
    let config = RunnerConfig::default();
    let _runner = runner::spawn(
        store.clone(),
        read_db.clone(),
        vec![Arc::new(UsageReadModel)],
        config.clone(),
    );
    infra::testing::eventually(
        std::time::Duration::from_secs(20),
        "the usage read model reaches the head",
        || {
            let read_db = read_db.clone();
            async move {
                let at = runner::checkpoints(&read_db)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .find(|cp| cp.name == UsageReadModel::NAME)
                    .map(|cp| cp.position());
                if at >= Some(head) {
                    Ok(())
                } else {
                    Err(format!("at {at:?}, head {head:?}"))
                }
            }
        },
    )
    .await;
    let brute = |meter: &Meter, (a, b): (DateTime<Utc>, DateTime<Utc>)| {
        meter.total(
            counted
                .iter()
                .filter(|e| e.meter == meter.key && e.timestamp >= a && e.timestamp < b)
                .map(|e| {
                    let value = if meter.key == "api.calls" { 1 } else { e.value };
                    (e.timestamp, value, e.key.as_deref())
                }),
        )
    };
    let mut ranges = vec![
        (utc(2026, 2, 1, 0), utc(2026, 3, 1, 0)),
        (utc(2026, 3, 1, 0), utc(2026, 4, 1, 0)),
        (from, now + Duration::hours(1)),
    ];
    // Short ones (within an hour or a few days: mostly rows and hour buckets) and long ones
    // (whole days in the middle).
    for i in 0..30 {
        let a = from + Duration::seconds(rng.below(span) as i64);
        let longest = [5_000, 200_000, 3_000_000][i % 3];
        ranges.push((a, a + Duration::seconds(1 + rng.below(longest) as i64)));
    }
    let check = async |read_db: &projections::ReadDb| {
        for meter in CATALOG {
            for range in &ranges {
                let total = UsageReadModel::total(read_db, &scope, meter, *range)
                    .await
                    .unwrap();
                assert_eq!(total, brute(meter, *range), "{} over {range:?}", meter.key);
            }
            // Aligned on hours, then cutting into the first and the last bucket.
            for window in [
                (utc(2026, 2, 26, 0), utc(2026, 3, 2, 13)),
                (
                    utc(2026, 2, 26, 0) + Duration::seconds(1_037),
                    utc(2026, 3, 2, 13) + Duration::seconds(2_471),
                ),
            ] {
                for bucket in [Bucket::Hour, Bucket::Day] {
                    let series = UsageReadModel::series(read_db, &scope, meter, window, bucket)
                        .await
                        .unwrap();
                    for (start, total) in series {
                        let end = start + bucket.length();
                        let part = (start.max(window.0), end.min(window.1));
                        assert_eq!(
                            total,
                            brute(meter, part),
                            "{} {bucket:?} {start}",
                            meter.key
                        );
                    }
                }
            }
        }
    };
    check(&read_db).await;
    runner::rebuild(&store, &read_db, &UsageReadModel, config, |_, _| {})
        .await
        .unwrap();
    check(&read_db).await;

    // Each counted event is explained by the read model.
    let one = counted[0];
    let explained = UsageReadModel::event(&read_db, &scope, &one.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (explained.meter.as_str(), explained.occurred_at),
        (one.meter.as_str(), one.timestamp)
    );
}
