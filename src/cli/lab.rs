//! `pxelab down` and `pxelab status` (once, or `--watch` until Ctrl-C).

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;

use super::output::{self, LabDisplay, Outcome};
use super::text;
use super::{runtime, shutdown_on_signals, Globals};
use crate::error::Result;
use crate::lab;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Redraw every second until Ctrl-C (with --json: one line per change).
    #[arg(long)]
    pub watch: bool,
    /// Only the lab on this network (with --json: one object, not the array of every lab).
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Stop the lab on this network (and undo what it left), leaving the others running.
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    pub network: Option<String>,
    /// Stop every lab.
    #[arg(long)]
    pub all: bool,
}

fn which(network: &Option<String>, all: bool) -> lab::Which {
    match (network, all) {
        (Some(n), _) => lab::Which::Network(n.clone()),
        (None, true) => lab::Which::All,
        (None, false) => lab::Which::Only,
    }
}

/// `status`'s output: one lab's object with --network, else the array of
/// every lab; one line of JSON either way.
fn status_shown(reports: &[lab::StatusReport], one: bool, json: bool) -> String {
    match (json, one) {
        (true, true) => serde_json::to_string(&reports[0]).unwrap_or_default() + "\n",
        (true, false) => serde_json::to_string(reports).unwrap_or_default() + "\n",
        (false, _) => text::labs_text(reports),
    }
}

/// How often `status --watch` looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// `pxelab down`.
pub fn down(args: DownArgs, globals: &Globals) -> Result<Outcome> {
    let mut display = LabDisplay::lines(globals.json);
    let which = which(&args.network, args.all);
    let reports = runtime()?.block_on(lab::down(&globals.uri, &which, &mut |event: &lab::LabEvent| display.show(event)))?;
    for report in &reports {
        if globals.json {
            output::json_line(report);
        } else {
            output::text(&text::down_text(report));
        }
    }
    Ok(Outcome::Done)
}

/// `pxelab status`.
pub fn status(args: StatusArgs, globals: &Globals) -> Result<Outcome> {
    let which = which(&args.network, false);
    let one = args.network.is_some();
    if !args.watch {
        let reports = lab::status(&globals.uri, &which)?;
        output::text(&status_shown(&reports, one, globals.json));
        let unreadable: Vec<_> = reports.into_iter().flat_map(|r| r.unreadable_journal).collect();
        if !unreadable.is_empty() {
            return Err(lab::unreadable_error(&unreadable));
        }
        return Ok(Outcome::Done);
    }
    // A terminal is redrawn in place; a pipe or log gets each new state once.
    let redraw = !globals.json && std::io::stdout().is_terminal();
    runtime()?.block_on(async move {
        let shutdown = shutdown_on_signals()?;
        let mut last = String::new();
        loop {
            let (uri, which) = (globals.uri.clone(), which.clone());
            let reports = crate::blocking::run(move || lab::status(&uri, &which)).await?;
            let shown = status_shown(&reports, one, globals.json);
            if shown != last {
                let clear = if redraw { "\x1b[H\x1b[2J" } else { "" };
                let separator = if !redraw && !globals.json && !last.is_empty() { "\n" } else { "" };
                output::text(&format!("{clear}{separator}{shown}"));
                last = shown;
            }
            if output::reader_gone() {
                return Ok(Outcome::Done);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(Outcome::Done),
                _ = tokio::time::sleep(WATCH_EVERY) => {}
            }
        }
    })
}
