//! End-to-end: projections in the real binary. `serve` projects the log; `projections status`
//! and `projections rebuild` work from the CLI; a SIGKILL in the middle of a load loses and
//! doubles nothing.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use commands::tenancy::{CreateTenant, Founder, create_tenant};
use commands::{CommandContext, Executor};
use domain::aggregate::Aggregate;
use domain::event::Actor;
use domain::ids::TenantId;
use domain::tenant::{Slug, Tenant, TenantName, TenantSettings};
use infra::database::{Database, DatabaseOptions};
use infra::testing::eventually;
use projections::read_your_writes::wait_for;
use projections::tenant_directory::TenantDirectory;
use projections::{Projector, ReadDb};
use std::process::Command;
use std::time::Duration;
use support::{Server, temp_dir, tenantry};

/// Provisions `n` tenants as operators do (each with its slug claimed in the same append, so
/// the `slug_claims` reactor finds nothing to add and the log stays still once they are in).
async fn provision_many(exec: &Executor, n: usize) -> Vec<TenantId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let created = create_tenant(
            exec,
            &CommandContext::new(Actor::system("e2e")),
            chrono::Utc::now(),
            CreateTenant {
                name: TenantName::parse(&format!("Tenant {i}")).unwrap(),
                slug: Slug::parse(&format!("t-{}", uuid::Uuid::now_v7().simple())).unwrap(),
                settings: TenantSettings::default(),
                founder: Founder::Operator,
            },
        )
        .await
        .unwrap();
        ids.push(created.tenant);
    }
    ids
}

fn run_ok(mut cmd: Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed: {stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_rebuild_from_the_cli_on_the_embedded_default() {
    let dir = temp_dir();
    let url = format!("sqlite://{}/data/tenantry.db", dir.display());
    let db = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap();
    let exec = Executor::new(db.event_store().await.unwrap());
    let tenants = provision_many(&exec, 25).await;
    // The server publishes the free plan when there is none: done here, it writes nothing.
    commands::billing::seed_free_plan(&exec, chrono::Utc::now())
        .await
        .unwrap();
    let head = exec.store().head().await.unwrap();

    let server = Server::start(tenantry(&dir));
    wait_for(
        &db.read_db(),
        &["tenant_directory"],
        head,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let (exit, _) = server.terminate();
    assert!(exit.success());

    let mut status = tenantry(&dir);
    status.args(["projections", "status"]);
    let (stdout, _) = run_ok(status);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("tenant_directory"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols[1..6],
        [
            TenantDirectory.version().to_string().as_str(),
            "1",
            &head.0.to_string(),
            "0",
            "live"
        ],
        "{row}"
    );

    let mut rebuild = tenantry(&dir);
    rebuild.args([
        "projections",
        "rebuild",
        "tenant_directory",
        "--batch-size",
        "7",
    ]);
    let (_, stderr) = run_ok(rebuild);
    assert!(
        stderr.contains("events/s") && stderr.contains("ETA"),
        "{stderr}"
    );
    assert!(stderr.contains("rebuilt tenant_directory"), "{stderr}");

    let mut status = tenantry(&dir);
    status.args(["projections", "status"]);
    let (stdout, _) = run_ok(status);
    let row = stdout
        .lines()
        .find(|l| l.starts_with("tenant_directory"))
        .unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "2", "a rebuild makes a new generation: {row}");
    assert_eq!(cols[4], "0", "and catches up to the head: {row}");
    let listed = TenantDirectory::list(&db.read_db(), None, 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), tenants.len());

    let out = tenantry(&dir)
        .args(["projections", "rebuild", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no projection named") && stderr.contains("tenant_directory"),
        "{stderr}"
    );
}

const WAIT: Duration = Duration::from_secs(30);

/// `url` with its sessions named `app` (`pg_stat_activity.application_name`).
fn with_application_name(url: &str, app: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={app}")
}

/// How many sessions named `app` are connected to this database.
async fn sessions_of(pool: &sqlx::PgPool, app: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = $1",
    )
    .bind(app)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The tenant directory's checkpoint.
async fn directory_checkpoint(read: &ReadDb) -> i64 {
    projections::runner::checkpoints(read)
        .await
        .unwrap()
        .into_iter()
        .find(|cp| cp.name == "tenant_directory")
        .map_or(0, |cp| cp.position)
}

/// Provisions `n` tenants from `writers` concurrent tasks.
fn load(exec: &Executor, writers: usize, n: usize) -> tokio::task::JoinHandle<()> {
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let exec = exec.clone();
            tokio::spawn(async move {
                provision_many(&exec, n / writers).await;
            })
        })
        .collect();
    tokio::spawn(async move {
        for task in tasks {
            task.await.unwrap();
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_a_load_neither_loses_nor_doubles_an_effect() {
    let url = infra::testing::fresh_pg_url().await;
    let db = Database::open(&url, &DatabaseOptions::default())
        .await
        .unwrap();
    let read = db.read_db();
    let exec = Executor::new(db.event_store().await.unwrap());
    provision_many(&exec, 50).await;
    let before_load = exec.store().head().await.unwrap();

    let start = |app: &str| {
        let mut cmd = tenantry(&temp_dir());
        cmd.env("TENANTRY_DATABASE_URL", with_application_name(&url, app))
            .env("TENANTRY_PROJECTION_BATCH_SIZE", "5");
        Server::start(cmd)
    };
    let mut first = start("tenantry_killed");
    // Load while the server projects; kill it without warning once it is projecting the load
    // and behind the head of the log, so it is in the middle of its batches.
    let load = load(&exec, 4, 400);
    eventually(WAIT, "the server projecting the load, behind", || {
        let (read, store) = (read.clone(), exec.store().clone());
        async move {
            let at = directory_checkpoint(&read).await;
            let head = i64::try_from(store.head().await.unwrap().0).unwrap();
            if at > i64::try_from(before_load.0).unwrap() && at < head {
                Ok(())
            } else {
                Err(format!("checkpoint {at}, head {head}"))
            }
        }
    })
    .await;
    let load_running = !load.is_finished();
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // A COMMIT the process sent just before it died still commits: look once its sessions
    // are gone.
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    eventually(WAIT, "the killed process's sessions ending", || async {
        match sessions_of(pool, "tenantry_killed").await {
            0 => Ok(()),
            n => Err(n),
        }
    })
    .await;
    let at_kill = directory_checkpoint(&read).await;
    let head_at_kill = exec.store().head().await.unwrap();
    assert!(load_running, "the load was over before the kill");
    assert!(
        i64::try_from(before_load.0).unwrap() < at_kill
            && at_kill < i64::try_from(head_at_kill.0).unwrap(),
        "the kill must land while the load is being projected: checkpoint {at_kill}, \
         load from {before_load} to {head_at_kill} and on"
    );
    // What the directory held at the kill is exactly the log up to the checkpoint: a batch in
    // flight at the kill left nothing behind, and none was committed without its checkpoint.
    let upto = exec
        .store()
        .read_all(
            domain::event::Position::START,
            usize::try_from(at_kill).unwrap(),
        )
        .await
        .unwrap();
    let tenants: std::collections::HashSet<_> = upto.iter().filter_map(|e| e.tenant_id).collect();
    let at_kill_rows = TenantDirectory::list(&read, None, 1_000).await.unwrap();
    assert_eq!(at_kill_rows.len(), tenants.len());
    assert_eq!(
        at_kill_rows.iter().map(|t| t.changes).sum::<i64>(),
        i64::try_from(
            upto.iter()
                .filter(|e| e.tenant_id.is_some() && e.stream.category() == Tenant::CATEGORY)
                .count()
        )
        .unwrap(),
        "the directory's changes at the kill differ from the events up to its checkpoint"
    );

    drop(first);
    let _second = start("tenantry_second");
    load.await.unwrap();
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(60))
        .await
        .unwrap();
    let survived = TenantDirectory::list(&read, None, 1_000).await.unwrap();
    assert_eq!(survived.len(), 450);

    projections::runner::rebuild(
        exec.store(),
        &read,
        &TenantDirectory,
        Default::default(),
        |_, _| {},
    )
    .await
    .unwrap();
    let rebuilt = TenantDirectory::list(&read, None, 1_000).await.unwrap();
    assert_eq!(survived, rebuilt);
}

/// `pg_try_advisory_lock(class, key)` class of projection leases (`projections::lease`).
const LEASE_CLASS: i64 = 0x7e4a_0001;

/// How many projection leases each process (by application name) holds, per `pg_locks`.
async fn lease_holders(admin: &sqlx::PgPool) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT a.application_name, count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE l.locktype = 'advisory' AND l.classid = $1::oid AND l.objsubid = 2 AND l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(LEASE_CLASS)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// Every write to a checkpoint row, in order, with the application name of the session that
/// made it.
/// The names of everything the runner runs: after each has reached a position, a process
/// writes no checkpoint until the log grows.
fn every_projection() -> Vec<&'static str> {
    api::areas::read_models()
        .iter()
        .map(|p| p.name())
        .chain(api::areas::REACTORS.iter().copied())
        .collect()
}

async fn checkpoint_writes(admin: &sqlx::PgPool) -> Vec<(i64, String, i64, String)> {
    sqlx::query_as("SELECT id, name, position, app FROM test_checkpoint_writes ORDER BY id")
        .fetch_all(admin)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_projector_and_one_takes_over_when_the_other_dies() {
    let url = infra::testing::fresh_pg_url().await;
    // Two servers catch up beside this process on a 2-core machine: a connection may take
    // longer than the default 5 s to come.
    let options = DatabaseOptions {
        acquire_timeout: Duration::from_secs(30),
        ..DatabaseOptions::default()
    };
    let db = Database::open(&url, &options).await.unwrap();
    let read = db.read_db();
    let exec = Executor::new(db.event_store().await.unwrap());
    let Database::Postgres(admin) = &db else {
        unreachable!()
    };
    // Each process names its sessions; a trigger records which session wrote each checkpoint
    // (rolled-back batches leave no record).
    for sql in [
        "CREATE TABLE test_checkpoint_writes (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, \
         position BIGINT NOT NULL, app TEXT NOT NULL)",
        "CREATE FUNCTION test_record_checkpoint_write() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN INSERT INTO test_checkpoint_writes (name, position, app) \
         VALUES (NEW.name, NEW.position, current_setting('application_name')); RETURN NULL; END $$",
        "CREATE TRIGGER test_checkpoint_writes AFTER INSERT OR UPDATE ON projections \
         FOR EACH ROW EXECUTE FUNCTION test_record_checkpoint_write()",
    ] {
        sqlx::query(sql).execute(admin).await.unwrap();
    }
    let start = |app: &str| {
        let mut cmd = tenantry(&temp_dir());
        cmd.env("TENANTRY_DATABASE_URL", with_application_name(&url, app));
        Server::start(cmd)
    };
    let a = start("tenantry_a");
    // Let the first process take every lease before the second starts.
    provision_many(&exec, 1).await;
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "a holding every lease", || async {
        // One lease per projector and reactor (the server runs `reactors()`, this counts
        // `REACTORS`: they must agree), and one per periodic job.
        let registered =
            api::areas::read_models().len() + api::areas::REACTORS.len() + api::areas::JOBS.len();
        match &lease_holders(admin).await[..] {
            [(app, n)] if app == "tenantry_a" && usize::try_from(*n).unwrap() == registered => {
                Ok(())
            }
            other => Err(format!("{other:?} for {registered} projections")),
        }
    })
    .await;
    let _b = start("tenantry_b");
    // Standing by: asking for the lease (and logging so, perhaps before it says where it
    // listens, which `Server::start` reads past).
    eventually(WAIT, "b asking for a lease", || async {
        let asking: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'tenantry_b' AND query LIKE '%pg_try_advisory_lock%'",
        )
        .fetch_one(admin)
        .await
        .unwrap();
        if asking > 0 { Ok(()) } else { Err(asking) }
    })
    .await;

    provision_many(&exec, 20).await;
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &every_projection(), head, Duration::from_secs(30))
        .await
        .unwrap();
    // While a lives, b holds no lease and wrote no checkpoint: it applied nothing.
    assert_eq!(lease_holders(admin).await.len(), 1);
    assert_eq!(lease_holders(admin).await[0].0, "tenantry_a");
    let before_kill = checkpoint_writes(admin).await;
    assert!(
        before_kill
            .iter()
            .any(|(_, name, at, _)| name == "tenant_directory"
                && *at == i64::try_from(head.0).unwrap()),
        "the directory's checkpoint never reached {head}: {before_kill:?}"
    );
    let by_b: Vec<_> = before_kill.iter().filter(|w| w.3 != "tenantry_a").collect();
    assert!(by_b.is_empty(), "the standby wrote checkpoints: {by_b:?}");

    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let died = std::time::Instant::now();
    eventually(
        Duration::from_secs(10),
        "b taking every lease over",
        || async {
            let registered = api::areas::read_models().len()
                + api::areas::REACTORS.len()
                + api::areas::JOBS.len();
            match &lease_holders(admin).await[..] {
                [(app, n)] if app == "tenantry_b" && usize::try_from(*n).unwrap() == registered => {
                    Ok(())
                }
                other => Err(format!("{other:?} for {registered} projections")),
            }
        },
    )
    .await;
    let takeover = died.elapsed();
    provision_many(&exec, 20).await;
    let head = exec.store().head().await.unwrap();
    wait_for(&read, &["tenant_directory"], head, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        TenantDirectory::list(&read, None, 100).await.unwrap().len(),
        41
    );
    let after_kill: Vec<_> = checkpoint_writes(admin)
        .await
        .into_iter()
        .skip(before_kill.len())
        .collect();
    assert!(
        after_kill.iter().all(|w| w.3 == "tenantry_b"),
        "after the kill only the standby writes checkpoints: {after_kill:?}"
    );
    assert!(
        after_kill
            .iter()
            .any(|(_, name, at, _)| name == "tenant_directory"
                && *at == i64::try_from(head.0).unwrap()),
        "the standby never moved the directory to {head}: {after_kill:?}"
    );
    assert!(
        takeover < Duration::from_secs(5),
        "takeover took {takeover:?}"
    );
}
