//! Lets the binaries built here find the libduckdb shared library at run time
//! (rpath to `DUCKDB_LIB_DIR`, set by `scripts/setup.sh`).
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
