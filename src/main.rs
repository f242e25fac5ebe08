//! pxelab's entry point: parse the command line, run it, and turn the
//! outcome into the documented exit code. Nothing else lives here.

use clap::Parser;

use pxelab::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    // `up` reports transfers and stages itself; the servers' own log lines
    // would say everything twice.
    let quiet = matches!(cli.command, pxelab::cli::Command::Up(_) | pxelab::cli::Command::Down);
    init_logging(cli.verbose, quiet);
    let json = cli.json;
    if let Err(err) = cli::run(cli) {
        let code = err.kind().exit_code();
        if json {
            let report = serde_json::json!({ "error": { "message": err.message(), "exit_code": code } });
            println!("{report}");
        }
        eprintln!("pxelab: error: {err}");
        std::process::exit(code);
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let default = match verbose {
        0 if quiet => "pxelab=warn",
        0 => "pxelab=info",
        1 => "pxelab=debug,info",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("PXELAB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
