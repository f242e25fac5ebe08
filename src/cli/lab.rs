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
    /// Redraw every second until Ctrl-C (with --json: one object per line, whenever it changes).
    #[arg(long)]
    pub watch: bool,
}

/// How often `status --watch` looks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// `pxelab down`.
pub fn down(globals: &Globals) -> Result<Outcome> {
    let mut display = LabDisplay::lines(globals.json);
    let report = runtime()?.block_on(lab::down(&globals.uri, &mut |event: &lab::LabEvent| display.show(event)))?;
    if globals.json {
        output::json_line(&report);
    } else {
        output::text(&text::down_text(&report));
    }
    Ok(Outcome::Done)
}

/// `pxelab status`.
pub fn status(args: StatusArgs, globals: &Globals) -> Result<Outcome> {
    if !args.watch {
        let report = lab::status()?;
        if globals.json {
            output::json(&report);
        } else {
            output::text(&text::status_text(&report));
        }
        if !report.unreadable_journal.is_empty() {
            return Err(lab::unreadable_error(&report.unreadable_journal));
        }
        return Ok(Outcome::Done);
    }
    // A terminal is redrawn in place; a pipe or log gets each new state once.
    let redraw = !globals.json && std::io::stdout().is_terminal();
    runtime()?.block_on(async move {
        let shutdown = shutdown_on_signals()?;
        let mut last = String::new();
        loop {
            let report = crate::blocking::run(lab::status).await?;
            let shown = if globals.json { serde_json::to_string(&report).unwrap_or_default() + "\n" } else { text::status_text(&report) };
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
