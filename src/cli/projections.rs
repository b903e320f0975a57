//! `tenantry projections status | rebuild NAME`.

use crate::cli::GlobalArgs;
use crate::wiring;
use anyhow::Context;
use std::io::{IsTerminal, Write};
use std::time::Instant;

#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Every registered projector and reactor: position, lag behind the head of the log, state
    /// and last error (`not_started` and position 0 for one that has not run yet).
    Status,
    /// Rebuilds a read model from the start of the log beside the live one, then swaps it in;
    /// queries keep being served from the old tables meanwhile.
    Rebuild {
        /// The projection (see `status`).
        name: String,
        /// Events per transaction.
        #[arg(long, default_value_t = 5_000)]
        batch_size: usize,
    },
}

pub async fn run(global: &GlobalArgs, command: ProjectionsCommand) -> anyhow::Result<()> {
    let app = wiring::open(global).await?;
    match command {
        ProjectionsCommand::Status => {
            let head = app.store.head().await?.0;
            let stored = projections::runner::checkpoints(&app.read_db).await?;
            // Reactors are listed by name (running none needs no mailer here); their version
            // is always 1 (`projections::reacting`).
            let registered: Vec<(&str, u32)> = api::areas::read_models()
                .iter()
                .map(|p| (p.name(), p.version()))
                .chain(
                    api::areas::REACTORS
                        .iter()
                        .chain(api::areas::PROVIDER_REACTORS)
                        .map(|name| (*name, 1)),
                )
                .collect();
            let mut rows: Vec<projections::runner::Checkpoint> = registered
                .iter()
                .map(|(name, version)| {
                    stored
                        .iter()
                        .find(|cp| cp.name == *name)
                        .cloned()
                        .unwrap_or_else(|| {
                            projections::runner::Checkpoint::not_started(name, *version)
                        })
                })
                .collect();
            // A checkpoint of a projector this build no longer has: shown, not hidden.
            rows.extend(
                stored
                    .into_iter()
                    .filter(|cp| !registered.iter().any(|(name, _)| *name == cp.name)),
            );
            rows.sort_by(|a, b| a.name.cmp(&b.name));
            let mut out = std::io::stdout().lock();
            writeln!(out, "head of the log: {head}")?;
            writeln!(
                out,
                "{:<24} {:>7} {:>10} {:>12} {:>10}  {:<12} last error",
                "projection", "version", "generation", "position", "lag", "state"
            )?;
            for cp in rows {
                let lag = head.saturating_sub(cp.position().0);
                let error = match (&cp.last_error, cp.error_position) {
                    (Some(e), Some(p)) => format!("at position {p}: {e}"),
                    (Some(e), None) => e.clone(),
                    _ => "-".into(),
                };
                writeln!(
                    out,
                    "{:<24} {:>7} {:>10} {:>12} {:>10}  {:<12} {}",
                    cp.name, cp.version, cp.generation, cp.position, lag, cp.status, error
                )?;
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { name, batch_size } => {
            let projector = api::areas::read_models()
                .into_iter()
                .find(|p| p.name() == name)
                .with_context(|| {
                    let known: Vec<_> =
                        api::areas::read_models().iter().map(|p| p.name()).collect();
                    format!("no projection named {name:?}; known: {}", known.join(", "))
                })?;
            let started = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let mut last_print = Instant::now();
            projections::runner::rebuild(
                &app.store,
                &app.read_db,
                projector.as_ref(),
                wiring::runner_config(batch_size.max(1)),
                |done, total| {
                    if last_print.elapsed().as_millis() < 200 && done < total {
                        return;
                    }
                    last_print = Instant::now();
                    let line = progress_line(done, total, started.elapsed().as_secs_f64());
                    let mut err = std::io::stderr().lock();
                    let _ = if tty {
                        write!(err, "\r{line}")
                    } else {
                        writeln!(err, "{line}")
                    };
                },
            )
            .await?;
            if tty {
                eprintln!();
            }
            eprintln!(
                "rebuilt {name} in {:.1} s; the new tables are live",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// `[#####.....]  41% 410000/1000000 events  98000 events/s  ETA 6 s`
fn progress_line(done: u64, total: u64, seconds: f64) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = (fraction * 30.0).round() as usize;
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    let eta = if rate > 0.0 {
        (total.saturating_sub(done)) as f64 / rate
    } else {
        0.0
    };
    format!(
        "[{}{}] {:>3.0}% {done}/{total} events  {rate:.0} events/s  ETA {eta:.0} s",
        "#".repeat(filled.min(30)),
        ".".repeat(30 - filled.min(30)),
        fraction * 100.0
    )
}
