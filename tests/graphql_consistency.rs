//! Read-your-writes from the outside: a write the API did not make (the `tenantry tenants`
//! CLI, another process) while the read models are held back, so only `atPosition` or
//! `X-Consistency-Position` can make a read see it; the bounded wait's CONFLICT naming the
//! lag; a position the log has not reached refused at once.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use sqlx::Connection;
use std::str::FromStr;
use std::time::{Duration, Instant};
use support::graphql::{Backend, Person, Platform, code, platform};

const READ: &str = "query($t: ID!, $p: String) { tenant(id: $t, atPosition: $p) { name } }";
const PLAIN: &str = "query($t: ID!) { tenant(id: $t) { name } }";
/// The API's bound on a read-your-writes wait (`ApiConfig::consistency_timeout`).
const BOUND: Duration = Duration::from_secs(2);

/// Holds the tenant directory's checkpoint back, as a slow projector would: the directory
/// cannot move past the position it is at until `release`.
enum Stall {
    /// A row lock on its checkpoint, in a transaction left open: its next commit waits.
    Postgres(sqlx::PgConnection),
    /// SQLite has no row locks: a trigger refuses to move the checkpoint, so the projector
    /// fails and retries (with backoff) until the trigger is dropped.
    Sqlite(sqlx::SqliteConnection),
}

impl Stall {
    async fn start(p: &Platform) -> Self {
        if p.database_url.starts_with("postgres") {
            let mut conn = sqlx::PgConnection::connect(&p.database_url).await.unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            sqlx::query(
                "SELECT position FROM projections WHERE name = 'tenant_directory' FOR UPDATE",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            Stall::Postgres(conn)
        } else {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&p.database_url).unwrap();
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::query(
                "CREATE TRIGGER test_stall BEFORE UPDATE OF position ON projections \
                 WHEN NEW.name = 'tenant_directory' AND NEW.position > OLD.position \
                 BEGIN SELECT RAISE(ABORT, 'held back by the test'); END",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            Stall::Sqlite(conn)
        }
    }

    async fn release(self) {
        match self {
            Stall::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
            }
            Stall::Sqlite(mut conn) => {
                sqlx::query("DROP TRIGGER test_stall")
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }
}

/// Renames the tenant with the CLI (a process of its own, which waits for nothing); the
/// position it wrote.
async fn rename_from_the_cli(p: &Platform, tenant: &str, name: &str) -> String {
    let mut cmd = support::tenantry(&p.dir);
    cmd.args(["--database-url", &p.database_url])
        .args(["tenants", "rename", tenant, "--name", name]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `tenant <id> version <v> position <p>`
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words.get(4), Some(&"position"), "{stdout}");
    words[5].to_owned()
}

async fn name_now(p: &Platform, who: &Person, tenant: &str) -> String {
    let data = p
        .api
        .ok(Some(&who.token), PLAIN, json!({"t": tenant}))
        .await;
    data["tenant"]["name"].as_str().unwrap().to_owned()
}

/// `tenant { name }` with the position as `atPosition` or as `X-Consistency-Position`.
async fn read_at(p: &Platform, who: &Person, tenant: &str, position: &str, header: bool) -> Value {
    let body = if header {
        json!({"query": PLAIN, "variables": {"t": tenant}})
    } else {
        json!({"query": READ, "variables": {"t": tenant, "p": position}})
    };
    let mut request = p
        .api
        .client
        .post(format!("{}/graphql", p.api.base))
        .bearer_auth(&who.token)
        .json(&body);
    if header {
        request = request.header("x-consistency-position", position);
    }
    request.send().await.unwrap().json().await.unwrap()
}

async fn reads_wait_for_positions_written_elsewhere(backend: Backend) {
    let p = platform(backend, &[]).await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;

    // Each way of asking, while the directory is held back: the read is sent, the read
    // model released while it waits (it may wait the whole bound), and it sees the write.
    let mut expected = "Tenant acme".to_owned();
    for (header, name) in [(false, "Renamed by the CLI"), (true, "Renamed again")] {
        let stall = Stall::start(&p).await;
        let position = rename_from_the_cli(&p, &tenant, name).await;
        assert_eq!(
            name_now(&p, &ada, &tenant).await,
            expected,
            "the read model is held back"
        );
        let read = {
            let (p, ada, tenant, position) = (&p, &ada, &tenant, &position);
            async move { read_at(p, ada, tenant, position, header).await }
        };
        let release = async {
            // Released while the read waits: well inside its bound.
            tokio::time::sleep(BOUND / 5).await;
            stall.release().await;
        };
        let (response, ()) = tokio::join!(read, release);
        assert_eq!(
            response["data"]["tenant"]["name"], name,
            "header {header}: {response}"
        );
        expected = name.to_owned();
    }

    // Held back past the bound: CONFLICT naming the read model, where it is and the
    // position asked for, after waiting the bound.
    let stall = Stall::start(&p).await;
    let position = rename_from_the_cli(&p, &tenant, "Renamed a third time").await;
    for header in [false, true] {
        let started = Instant::now();
        let response = read_at(&p, &ada, &tenant, &position, header).await;
        let waited = started.elapsed();
        assert_eq!(code(&response), Some("CONFLICT"), "{response}");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.contains("tenant_directory")
                && message.contains(&format!("not yet at {position}")),
            "the lag is named: {message}"
        );
        assert!(
            waited >= BOUND - Duration::from_millis(100),
            "it waited its bound first: {waited:?}"
        );
    }
    // A position the log has not reached: refused at once, not after the bound.
    let beyond = (p.api.head().await + 1000).to_string();
    for header in [false, true] {
        let started = Instant::now();
        let response = read_at(&p, &ada, &tenant, &beyond, header).await;
        assert_eq!(code(&response), Some("BAD_USER_INPUT"), "{response}");
        assert!(
            started.elapsed() < BOUND / 2,
            "refused at once: {:?}",
            started.elapsed()
        );
    }
    stall.release().await;
    let caught_up = support::eventually(
        "the directory to catch up",
        Duration::from_secs(60),
        || async {
            let name = name_now(&p, &ada, &tenant).await;
            (name == "Renamed a third time").then_some(name)
        },
    )
    .await;
    assert_eq!(caught_up, "Renamed a third time");
}

on_both!(reads_wait_for_positions_written_elsewhere);
