#!/usr/bin/env bash
# The whole test suite, with all set-up: installs what is missing, starts the
# real servers the backend and migration tests use (PostgreSQL + pgvector,
# Redis, Chroma) on loopback, builds once (the dev profile, dependencies
# optimised), runs every test, and stops the servers.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/services.sh
start=$(date +%s)
trap services_stop EXIT
services_start
cargo test --workspace --no-fail-fast "$@"
echo "test.sh: finished in $(( $(date +%s) - start ))s" >&2
