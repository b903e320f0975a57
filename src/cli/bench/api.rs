//! `tenantry bench api`: a `tenantry serve` process (on a scratch SQLite file and a scratch
//! PostgreSQL database) driven over HTTP by 32 keep-alive connections from this process: a
//! typical dashboard query (a tenant with its members and API keys) and a small mutation (a
//! tenant settings change). Prints requests/s, p50/p95/p99, the server's CPU time per
//! request and its peak resident memory; asserts nothing.
//!
//! Load generator and server share this machine's cores, as they would with wrk.

use super::scratch::{ScratchArgs, percentile};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, clap::Args)]
pub struct ApiBenchArgs {
    #[command(flatten)]
    pub databases: ScratchArgs,
    /// Seconds each case runs.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Members (besides the owner) and API keys of the tenant the dashboard shows.
    #[arg(long, default_value_t = 5)]
    pub members: usize,
}

const DASHBOARD: &str = "query Dashboard($t: ID!) { tenant(id: $t) { id name slug status plan \
    members { edges { node { userId email role joinedAt } } } \
    apiKeys { edges { node { id name scope createdAt lastUsedAt revokedAt } } } } }";
const MUTATION: &str = "mutation Settings($t: ID!, $v: String!) { changeTenantSettings(tenantId: $t, \
    settings: [{key: \"theme\", value: $v}]) { tenant { id } position } }";

/// One HTTP/1.1 keep-alive connection (the bench needs nothing more).
pub(super) struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    pub(super) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    pub(super) async fn graphql(
        &mut self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let body = json!({"query": query, "variables": variables}).to_string();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            self.stream.read_line(&mut header).await?;
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).await?;
        let response: Value = serde_json::from_slice(&body)?;
        if let Some(errors) = response.get("errors") {
            bail!("{query}: {errors}");
        }
        Ok(response["data"].clone())
    }
}

impl Connection {
    /// POSTs `body` to `path` with `token`; the status and the JSON answer.
    pub(super) async fn post(
        &mut self,
        path: &str,
        token: &str,
        content_type: &str,
        body: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .context("a status line")?
            .parse()?;
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            self.stream.read_line(&mut header).await?;
            if header == "\r\n" || header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut answer = vec![0u8; length];
        self.stream.read_exact(&mut answer).await?;
        Ok((status, serde_json::from_slice(&answer)?))
    }
}

/// The `Token:` line of the e-mail to `to` about `subject` in `dir` (each person gets one of
/// each).
fn mailed_token(dir: &Path, to: &str, subject: &str) -> anyhow::Result<String> {
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        let has = |prefix: &str, value: &str| {
            text.lines()
                .any(|l| l.starts_with(prefix) && l.contains(value))
        };
        if has("To: ", to) && has("Subject: ", subject) {
            return text
                .lines()
                .find_map(|l| l.strip_prefix("Token: "))
                .map(|t| t.trim().to_owned())
                .context("no token in the e-mail");
        }
    }
    bail!("no e-mail to {to} about {subject:?}")
}

/// The bench's tenant owner, a platform operator on the bench's server.
pub(super) const OWNER: &str = "owner@bench.example";

/// The token of the newest mail to `email`, once the mail outbox has sent it (shortly after
/// the request that queued it answered).
async fn wait_for_token(mail: &Path, email: &str, subject: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match mailed_token(mail, email, subject) {
            Ok(token) => return Ok(token),
            Err(error) if Instant::now() > deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub(super) async fn person(c: &mut Connection, mail: &Path, email: &str) -> anyhow::Result<String> {
    let password = "bench password 12345";
    c.graphql(None, "mutation($e: String!, $p: String!) { signUp(input: {email: $e, password: $p}) { position } }", json!({"e": email, "p": password})).await?;
    let token = wait_for_token(mail, email, "Verify").await?;
    c.graphql(
        None,
        "mutation($t: String!, $p: String!) { verifyEmail(token: $t, password: $p) { position } }",
        json!({"t": token, "p": password}),
    )
    .await?;
    let data = c
        .graphql(None, "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }", json!({"e": email, "p": password}))
        .await?;
    Ok(data["logIn"]["token"].as_str().context("token")?.to_owned())
}

struct Measured {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

async fn drive(
    addr: SocketAddr,
    connections: usize,
    seconds: f64,
    token: &str,
    query: &'static str,
    variables: impl Fn(usize, usize) -> Value + Clone + Send + 'static,
) -> anyhow::Result<Measured> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let token = token.to_owned();
        let variables = variables.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::open(addr).await?;
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                c.graphql(Some(&token), query, variables(worker, n)).await?;
                latencies.push(t.elapsed());
                n += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    latencies.sort_unstable();
    Ok(Measured {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

/// A `tenantry serve` child process; killed when dropped.
pub(super) struct ServerProcess {
    child: std::process::Child,
    pub(super) addr: SocketAddr,
}

impl ServerProcess {
    pub(super) fn start(database_url: &str, work: &Path) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "--database-url",
                database_url,
                "--max-connections",
                "24",
                "serve",
            ])
            .args([
                "--listen",
                "127.0.0.1:0",
                "--auth-attempts-per-minute",
                "1000000",
                // The owner creates a tenant per connection, and (as an operator) lifts the
                // free plan's limits for the bench's members and keys.
                "--max-tenants-per-user",
                "100000",
                "--operators",
                OWNER,
            ])
            .arg("--master-key-file")
            .arg(work.join("master.key"))
            .arg("--mail-dir")
            .arg(work.join("mail"))
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting tenantry serve")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the server's log to the end (one line per request), so it never blocks on a
        // full pipe; passes on where it listens.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("listening on http://") {
                    let addr = line[at + "listening on http://".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .context("the server did not start")?
            .parse()?;
        Ok(Self { child, addr })
    }

    /// CPU time (user and system) the server has used so far.
    fn cpu(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // After the command name (which ends at the last ')'), utime and stime are the 12th
        // and 13th fields, in clock ticks (100 per second on Linux).
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> anyhow::Result<u64> {
            Ok(fields.get(i).context("short /proc stat")?.parse()?)
        };
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// The server's peak resident set size, in MiB.
    fn peak_rss_mib(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .context("no VmHWM")?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?;
        Ok(kib / 1024.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[expect(clippy::print_stdout, reason = "a benchmark prints its figures")]
pub async fn run(args: ApiBenchArgs) -> anyhow::Result<()> {
    println!(
        "API benchmark: {} connections, {} s per case; dashboard = tenant + {} members + {} API keys",
        args.connections,
        args.seconds,
        args.members + 1,
        args.members
    );
    println!(
        "{:<10} {:<20} {:>8} {:>8} {:>8} {:>8} {:>12} {:>15}",
        "backend", "case", "req/s", "p50 ms", "p95 ms", "p99 ms", "server CPU", "server peak RSS"
    );
    for scratch in args.databases.create().await? {
        let work = std::env::temp_dir().join(format!(
            "tenantry-bench-api-{}",
            uuid::Uuid::now_v7().simple()
        ));
        let mail = work.join("mail");
        let server = ServerProcess::start(&scratch.url, &work)?;
        let addr = server.addr;

        let mut c = Connection::open(addr).await?;
        let owner = person(&mut c, &mail, OWNER).await?;
        c.graphql(
            Some(&owner),
            "mutation { publishPlan(input: {key: \"free\", name: \"Bench\", prices: [{interval: MONTH, amount: 0, currency: \"eur\"}]}) { position } }",
            json!({}),
        )
        .await?;
        let created = c
            .graphql(Some(&owner), "mutation { createTenant(input: {name: \"Bench\", slug: \"bench\"}) { tenant { id } } }", json!({}))
            .await?;
        let tenant = created["createTenant"]["tenant"]["id"]
            .as_str()
            .context("tenant id")?
            .to_owned();
        for i in 0..args.members {
            let email = format!("member{i}@bench.example");
            let token = person(&mut c, &mail, &email).await?;
            c.graphql(Some(&owner), "mutation($t: ID!, $e: String!) { inviteMember(tenantId: $t, email: $e, role: MEMBER) { position } }", json!({"t": tenant, "e": email})).await?;
            let invite = wait_for_token(&mail, &email, "invited").await?;
            c.graphql(
                Some(&token),
                "mutation($t: String!) { acceptInvite(token: $t) { position } }",
                json!({"t": invite}),
            )
            .await?;
            c.graphql(Some(&owner), "mutation($t: ID!, $n: String!) { createApiKey(tenantId: $t, name: $n, scope: READ_ONLY) { position } }", json!({"t": tenant, "n": format!("key {i}")})).await?;
        }
        let check = c
            .graphql(Some(&owner), DASHBOARD, json!({"t": tenant}))
            .await?;
        let members = check["tenant"]["members"]["edges"]
            .as_array()
            .map_or(0, Vec::len);
        anyhow::ensure!(
            members == args.members + 1,
            "the dashboard shows {members} members"
        );

        // The mutation: each connection changes the settings of a tenant of its own (writers
        // on one tenant would only measure how often they collide).
        let mut own = Vec::new();
        for i in 0..args.connections {
            let created = c
                .graphql(Some(&owner), "mutation($s: String!) { createTenant(input: {name: \"Writer\", slug: $s}) { tenant { id } } }", json!({"s": format!("writer-{i}")}))
                .await?;
            own.push(
                created["createTenant"]["tenant"]["id"]
                    .as_str()
                    .context("tenant id")?
                    .to_owned(),
            );
        }
        let t = tenant.clone();
        let cpu = server.cpu()?;
        let query = drive(
            addr,
            args.connections,
            args.seconds,
            &owner,
            DASHBOARD,
            move |_, _| json!({"t": t}),
        )
        .await?;
        let query_cpu = server.cpu()?.saturating_sub(cpu);
        let cpu = server.cpu()?;
        let mutation = drive(
            addr,
            args.connections,
            args.seconds,
            &owner,
            MUTATION,
            move |worker, n| json!({"t": own[worker % own.len()], "v": format!("v{n}")}),
        )
        .await?;
        let mutation_cpu = server.cpu()?.saturating_sub(cpu);
        let rss = server.peak_rss_mib()?;
        for (case, m, cpu) in [
            ("dashboard query", &query, query_cpu),
            ("settings mutation", &mutation, mutation_cpu),
        ] {
            let ms = |q| percentile(&m.latencies, q).as_secs_f64() * 1000.0;
            println!(
                "{:<10} {:<20} {:>8.0} {:>8.2} {:>8.2} {:>8.2} {:>9.0} us {:>11.1} MiB",
                scratch.backend,
                case,
                m.requests as f64 / m.elapsed.as_secs_f64(),
                ms(0.50),
                ms(0.95),
                ms(0.99),
                cpu.as_secs_f64() * 1e6 / m.requests.max(1) as f64,
                rss
            );
        }
        drop(server);
        scratch.remove().await?;
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
