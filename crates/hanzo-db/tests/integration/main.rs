//! One integration-test binary, a module per area, all on real engines in
//! temporary directories.

mod common;
mod conformance;
mod core_spec;
mod encryption;
mod indexes;
mod search;
mod security_keys;
mod security_tee;
mod time_travel;
mod upkeep;
mod write_buffer;
mod write_buffer_crash;
