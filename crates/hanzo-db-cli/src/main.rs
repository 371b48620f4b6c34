//! `hanzo-db`: the command-line tool, a thin layer over the `hanzo-db` library.
//!
//! Exit status: 0 success, 1 user error (bad argument, unknown table, bad
//! filter), 2 usage error (from the argument parser), 3 data or engine
//! failure (a bad input file, a storage error).

mod args;
mod bench;
mod commands;
mod formats;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::output::DataError;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hanzo-db: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = exit_code(&err);
            eprintln!("hanzo-db: {err:#}");
            if let Some(hint) = err.downcast_ref::<hanzo_db::Error>().and_then(|e| e.hint()) {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(code)
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<DataError>().is_some() {
        return 3;
    }
    match err.downcast_ref::<hanzo_db::Error>() {
        Some(e) if e.is_user_error() => 1,
        Some(_) => 3,
        None => 1,
    }
}
