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

# One target dir outside the clone, reused across clones and by CI when present.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hanzo-db-target}"
mkdir -p "$CARGO_TARGET_DIR"
