use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match unstuck::cli::run(unstuck::cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole chain: what failed, then why.
            eprintln!("unstuck: {err:#}");
            ExitCode::FAILURE
        }
    }
}
