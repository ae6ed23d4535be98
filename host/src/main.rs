//! `cinema`: see the crate docs of `cinema_host` for what each subcommand does.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cinema_host::cli::Cli::parse();
    cinema_host::cli::init_tracing();
    match cinema_host::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
