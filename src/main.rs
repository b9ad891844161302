use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match unstuck::cli::run(unstuck::cli::Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("unstuck: {}", unstuck::cli::words_of(&err));
            unstuck::cli::exit_code_of(&err)
        }
    }
}
