//! One integration-test binary, a module per area, all on real engines in
//! temporary directories.

mod common;
mod conformance;
mod core_spec;
mod search;
mod indexes;
mod time_travel;
mod upkeep;
