//! Prometheus metrics, kept in process and rendered as text on `GET /metrics`: GraphQL
//! operations (count, errors, latency histogram), command outcomes, read-model queries,
//! and projection lag (read at scrape time).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Distinct operation names tracked; later ones are counted as `other` (names come from
/// clients, so their number must be bounded).
const MAX_OPERATIONS: usize = 200;

#[derive(Debug, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Inner {
    operations: BTreeMap<(String, &'static str), u64>,
    latency: BTreeMap<String, Histogram>,
    commands: BTreeMap<(&'static str, &'static str), u64>,
    read_queries: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// A label value made safe: `[A-Za-z0-9_]`, at most 64 characters.
fn label(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if clean.is_empty() {
        "anonymous".into()
    } else {
        clean
    }
}

impl Metrics {
    /// Counts an operation under `name` (see `http::operation_label`: an operation its
    /// document defines, never a name the client merely sent).
    pub fn operation(&self, name: &str, ok: bool, took: Duration) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let mut name = label(name);
        if !inner.latency.contains_key(&name) && inner.latency.len() >= MAX_OPERATIONS {
            name = "other".into();
        }
        let outcome = if ok { "ok" } else { "error" };
        *inner.operations.entry((name.clone(), outcome)).or_default() += 1;
        let h = inner.latency.entry(name).or_default();
        if h.buckets.is_empty() {
            h.buckets = vec![0; BUCKETS.len()];
        }
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.buckets[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn command(&self, aggregate: &'static str, outcome: &'static str) {
        if let Ok(mut inner) = self.inner.lock() {
            *inner.commands.entry((aggregate, outcome)).or_default() += 1;
        }
    }

    pub fn read_queries(&self, n: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.read_queries += n;
        }
    }

    /// The Prometheus text exposition, with each projection's lag (events behind the head).
    pub fn render(&self, lag: &[(String, u64)]) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else {
            return out;
        };
        out.push_str(
            "# HELP tenantry_graphql_operations_total GraphQL operations by name and outcome.\n",
        );
        out.push_str("# TYPE tenantry_graphql_operations_total counter\n");
        for ((name, outcome), n) in &inner.operations {
            let _ = writeln!(
                out,
                "tenantry_graphql_operations_total{{operation=\"{name}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str("# HELP tenantry_graphql_operation_seconds GraphQL operation latency.\n");
        out.push_str("# TYPE tenantry_graphql_operation_seconds histogram\n");
        for (name, h) in &inner.latency {
            for (bound, n) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "tenantry_graphql_operation_seconds_bucket{{operation=\"{name}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "tenantry_graphql_operation_seconds_bucket{{operation=\"{name}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "tenantry_graphql_operation_seconds_sum{{operation=\"{name}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "tenantry_graphql_operation_seconds_count{{operation=\"{name}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP tenantry_commands_total Commands by aggregate and outcome.\n");
        out.push_str("# TYPE tenantry_commands_total counter\n");
        for ((aggregate, outcome), n) in &inner.commands {
            let _ = writeln!(
                out,
                "tenantry_commands_total{{aggregate=\"{aggregate}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP tenantry_read_model_queries_total Read-model queries issued by the API.\n",
        );
        out.push_str("# TYPE tenantry_read_model_queries_total counter\n");
        let _ = writeln!(
            out,
            "tenantry_read_model_queries_total {}",
            inner.read_queries
        );
        out.push_str("# HELP tenantry_projection_lag_events Events between the head of the log and each projection's checkpoint.\n");
        out.push_str("# TYPE tenantry_projection_lag_events gauge\n");
        for (name, behind) in lag {
            let _ = writeln!(
                out,
                "tenantry_projection_lag_events{{projection=\"{}\"}} {behind}",
                label(name)
            );
        }
        out
    }
}
