//! The `mpcformer` command line: its arguments ([`args`]), what each command runs
//! ([`dispatch`]), and how results are printed ([`render`]) and drawn ([`plot`]).
#![forbid(unsafe_code)]

mod args;
mod dispatch;
#[cfg(feature = "distill")]
mod distill;
mod plot;
mod render;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    mpc_core::gemm::set_threads(cli.threads);
    let name = cli.command.name();
    match dispatch::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mpcformer {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
