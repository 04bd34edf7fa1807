//! `--watch`: show a view again whenever it changes, until Ctrl-C. On a terminal the
//! screen is redrawn in place; otherwise each change is printed after the last (JSON:
//! one document a line), so a script can read changes as they come.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::client::CliError;

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Keep showing it, again each time it changes, until Ctrl-C.
    #[arg(long, short = 'w')]
    pub watch: bool,
    /// Seconds between looks, with --watch.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub interval: f64,
}

impl WatchArgs {
    fn every(&self) -> Result<Duration, CliError> {
        Duration::try_from_secs_f64(self.interval)
            .ok()
            .filter(|d| *d >= Duration::from_millis(100))
            .ok_or_else(|| CliError::Usage(format!("--interval {} must be 0.1 seconds or more", self.interval)))
    }
}

/// Looks with `fetch` every interval and shows what `render` makes of it when it
/// differs from the last shown. A server out of reach is retried (it says so); any
/// other error ends the watch with it.
pub async fn watch<F, Fut>(
    args: &WatchArgs,
    json_out: bool,
    fetch: F,
    render: &dyn Fn(&Value) -> String,
) -> Result<(), CliError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Value, CliError>>,
{
    let every = args.every()?;
    let terminal = std::io::stdout().is_terminal();
    let mut shown: Option<String> = None;
    loop {
        let looked = tokio::select! {
            looked = fetch() => looked,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let view = match looked {
            Ok(value) if json_out => serde_json::to_string(&value).expect("JSON prints"),
            Ok(value) => render(&value),
            Err(e @ CliError::Unreachable { .. }) => format!("{}\n(retrying every {:?})", e.explain(), every),
            Err(e) => return Err(e),
        };
        if shown.as_ref() != Some(&view) {
            show(&view, terminal, json_out, every);
            shown = Some(view);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn show(view: &str, terminal: bool, json_out: bool, every: Duration) {
    let now = time::OffsetDateTime::now_utc();
    let at = format!("{:02}:{:02}:{:02} UTC", now.hour(), now.minute(), now.second());
    let mut out = std::io::stdout().lock();
    let _ = if json_out {
        writeln!(out, "{view}")
    } else if terminal {
        // Home and clear, then the view under a line saying how fresh it is.
        write!(out, "\x1b[H\x1b[2J{at} · every {every:?} · Ctrl-C stops\n\n{view}\n")
    } else {
        writeln!(out, "--- {at}\n{view}")
    };
    let _ = out.flush();
}
