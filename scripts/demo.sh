#!/usr/bin/env bash
# The main job: build hanzo-db and run `hanzo-db demo` on the embedded default (LanceDB).
# It builds exactly what the test command builds (the workspace with its test
# targets), so the two commands share one build and never rebuild each other's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --workspace --tests --quiet
data="${HANZO_DEMO_DB:-$(mktemp -d)/hanzo-demo}"
# The demo database is throw-away: keep its generated key file beside it
# (outside the database directory, as always) rather than in ~/.config.
export HANZO_DB_KEY_DIR="${HANZO_DB_KEY_DIR:-$(dirname "$data")/keys}"
"$CARGO_TARGET_DIR/debug/hanzo-db" --db "$data" demo "$@"
