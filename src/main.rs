//! pxelab's entry point: parse the command line, run it, and turn the
//! outcome into the documented exit code. This is the only place that
//! decides how the process exits.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

use pxelab::cli::{self, output, Cli, Outcome};
use pxelab::error::Error;

fn main() -> ExitCode {
    // Known before parsing, so that a usage error is JSON too.
    let json_asked = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            output::text(&e.render().to_string());
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&usage_error(&e), json_asked),
    };
    init_logging(cli.verbose, cli.quiet, cli.command.reports_itself());
    output::set_quiet(cli.quiet);
    raise_open_file_limit();
    let json = cli.json;
    match cli::run(cli) {
        // A reader that closed stdout early (`| head`) is not a failure.
        Ok(_) if output::write_error().is_some() => {
            let message = output::write_error().unwrap_or_default();
            fail(&Error::other(format!("cannot write to standard output: {message}")), false)
        }
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::ChecksFailed) => ExitCode::from(1),
        Err(err) => fail(&err, json),
    }
}

/// Reports `err` (one line on stderr; with `--json`, also a JSON object on
/// stdout) and returns its exit code.
fn fail(err: &Error, json: bool) -> ExitCode {
    let code = err.kind().exit_code();
    // `-q` silences all but this.
    output::set_quiet(false);
    if json {
        output::json_line(&serde_json::json!({ "error": { "message": err.message(), "exit_code": code } }));
    }
    let _ = writeln!(std::io::stderr(), "pxelab: error: {err}");
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// clap's several-line report as one line in pxelab's format: the error,
/// clap's suggestion ("a similar argument exists: '--network'"), and where
/// to read more.
fn usage_error(e: &clap::Error) -> Error {
    let rendered = e.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if let Some(message) = line.strip_prefix("error: ") {
            parts.push(message.to_string());
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        }
    }
    // "Usage: pxelab up [OPTIONS] --iso <ISO>" names the verb to ask about.
    let command: Vec<&str> = rendered
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))
        .map(|u| u.split_whitespace().take_while(|w| !w.starts_with(['[', '<', '-'])).collect())
        .unwrap_or_default();
    let command = if command.is_empty() { "pxelab".to_string() } else { command.join(" ") };
    if parts.is_empty() {
        parts.push(e.kind().to_string());
    }
    Error::usage(format!("{}; see `{command} --help`", parts.join("; ")))
}

/// Servers hold a descriptor per connection and per open transfer: take
/// the hard limit the host allows, not the 1024 a shell starts with.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn init_logging(verbose: u8, silent: bool, reports_itself: bool) {
    let default = match verbose {
        _ if silent => "pxelab=error",
        0 if reports_itself => "pxelab=warn",
        0 => "pxelab=info",
        1 => "pxelab=debug,info",
        _ => "pxelab=trace,info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PXELAB_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for people: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
