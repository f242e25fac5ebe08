//! `pxelab completions SHELL`: shell completions generated from the same
//! clap definitions as `--help`, so they cannot drift from the flags. (The
//! man pages come from the same definitions through `examples/mangen.rs`.)

use clap::{Args, CommandFactory, ValueEnum};

use super::output::{self, Outcome};
use super::Cli;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs) -> Result<Outcome> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pxelab", &mut script);
    output::text(&String::from_utf8_lossy(&script));
    Ok(Outcome::Done)
}
