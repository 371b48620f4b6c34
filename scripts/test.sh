#!/usr/bin/env bash
# The whole test suite, with all set-up: installs what is missing, builds once
# (the dev profile, dependencies optimised), runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
start=$(date +%s)
cargo test --workspace --no-fail-fast "$@"
echo "test.sh: finished in $(( $(date +%s) - start ))s" >&2
