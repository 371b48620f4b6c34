//! Drives the real `hanzo-db` binary on real files.

mod common;
mod errors;
mod roundtrip;
mod workflow;
