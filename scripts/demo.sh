#!/usr/bin/env bash
# The main job: build hanzo-db and run `hanzo-db demo` on the embedded default (LanceDB).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
data="${HANZO_DEMO_DB:-$(mktemp -d)/hanzo-demo}"
cargo run --quiet -p hanzo-db-cli --bin hanzo-db -- --db "$data" demo "$@"
