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
            // Help that could not be written (a full disk) is a failure; a closed pipe is not.
            return match output::write_error() {
                Some(message) => fail(&Error::other(format!("cannot write to standard output: {message}")), false),
                None => ExitCode::SUCCESS,
            };
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
    let verb = verb_of(std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect());
    let message = format!("{}; see `{verb} --help`", clap_message(e, &verb));
    // A value that does not parse or is out of range is bad input (3);
    // the shape of the command line (a missing or unknown argument) is usage (2).
    match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => Error::bad_input(message),
        _ => Error::usage(message),
    }
}

/// clap's whole message on one line: the error, what follows it (the
/// missing arguments, the possible values), and its tip. A verb given no
/// subcommand gets the list of its subcommands.
fn clap_message(e: &clap::Error, verb: &str) -> String {
    let rendered = e.render().to_string();
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let commands: Vec<&str> = rendered
            .lines()
            .skip_while(|l| l.trim() != "Commands:")
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .collect();
        return format!("`{verb}` needs a command: {}", commands.join(", "));
    }
    let mut parts: Vec<String> = Vec::new();
    let mut details: Vec<String> = Vec::new();
    for line in rendered.lines() {
        let trimmed = line.trim();
        if let Some(message) = trimmed.strip_prefix("error: ") {
            parts.push(message.trim_end_matches(':').to_string());
        } else if let Some(tip) = trimmed.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        } else if trimmed.starts_with("Usage: ") || trimmed.starts_with("For more information") {
            break;
        } else if let Some(values) = trimmed.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            parts.push(values.to_string());
        } else if !trimmed.is_empty() && line.starts_with("  ") && !parts.is_empty() {
            details.push(trimmed.to_string());
        }
    }
    if !details.is_empty() {
        let first = parts.first_mut().expect("checked above");
        *first = format!("{first}: {}", details.join(", "));
    }
    if parts.is_empty() {
        parts.push(e.kind().to_string());
    }
    parts.join("; ")
}

/// The verb the arguments name (`pxelab`, `pxelab net patch`, …), for the
/// help to point at: each word that is a subcommand of the one before.
fn verb_of(args: Vec<String>) -> String {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["pxelab".to_string()];
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-c" || arg == "--connect" {
            args.next();
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        match command.find_subcommand(&arg).cloned() {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                command = sub;
            }
            None => break,
        }
    }
    path.join(" ")
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
        // On a failed write (stderr closed: `2>&1 | head`) tracing would
        // report it with `eprintln!`, which panics on that same stderr and
        // would kill a lab before its teardown. A log nobody reads is dropped.
        .log_internal_errors(false)
        // Colour codes only for people: a log file or a pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
