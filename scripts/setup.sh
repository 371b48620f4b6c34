#!/usr/bin/env bash
# Installs what a fresh machine lacks to build hanzo-db: protoc (Lance needs it).
# Sourced by the other scripts; safe to run twice.
set -euo pipefail

need_apt=()
command -v protoc >/dev/null 2>&1 || need_apt+=(protobuf-compiler)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust with rustup" >&2; exit 1; }

# DuckDB: the official libduckdb shared library (1.5.6, matching the `duckdb`
# crate) from DuckDB's npm package; building it from source takes ~20 min here.
DUCKDB_VERSION=1.5.6
export DUCKDB_LIB_DIR="${DUCKDB_LIB_DIR:-$HOME/.cache/hanzo-db/libduckdb-$DUCKDB_VERSION}"
if [ ! -f "$DUCKDB_LIB_DIR/libduckdb.so" ]; then
  echo "setup: fetching libduckdb $DUCKDB_VERSION into $DUCKDB_LIB_DIR" >&2
  command -v npm >/dev/null 2>&1 || { echo "setup: npm is needed to fetch libduckdb (or set DUCKDB_LIB_DIR)" >&2; exit 1; }
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "@duckdb/node-bindings-linux-x64@$DUCKDB_VERSION-r.1" >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$DUCKDB_LIB_DIR"
  mv "$tmp/package/libduckdb.so" "$DUCKDB_LIB_DIR/"
  rm -rf "$tmp"
fi
export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# One target dir outside the clone, reused across clones and by CI when present.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanzo-db-target}"
mkdir -p "$CARGO_TARGET_DIR"
