//! Writes pxelab's man pages, `pxelab(1)` and one per verb (`pxelab-up(1)`,
//! `pxelab-vm-new(1)`, …), into the directory given, from the same clap
//! definitions as `--help`. `make man` runs it; it is not a verb of pxelab
//! itself, so completions never offer it.

use clap::CommandFactory;

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: mangen DIR");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| clap_mangen::generate_to(pxelab::cli::Cli::command(), &dir)) {
        eprintln!("mangen: cannot write man pages into {}: {e}", std::path::Path::new(&dir).display());
        std::process::exit(1);
    }
}
