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

/// jemalloc, not glibc's malloc: after a bulk load and an index build,
/// glibc's fragmented heap made every later LanceDB search slower (12 % of a
/// search in `_int_malloc`) and held half as much memory again.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: no dedicated arena for allocations over 8 MiB (it
/// returned their pages at once, so each of a bulk load's 16 MiB Arrow
/// batches, and each large buffer of a hot index load, faulted its pages in
/// afresh), and freed pages returned by background threads instead.
#[cfg(not(target_env = "msvc"))]
#[allow(unsafe_code, non_upper_case_globals)]
// SAFETY: this is the C global `const char *malloc_conf` (with
// tikv-jemalloc-sys's `_rjem_` prefix) that jemalloc reads once at start-up;
// it points at a NUL-terminated string that lives for the whole program.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"oversize_threshold:0,background_thread:true".as_ptr() });

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
