#!/usr/bin/env bash
# Runs the given command with SIDESTEP_TEST_PG_URL pointing at a PostgreSQL server:
# the one named already, else one answering on 127.0.0.1:5432, else a throwaway server
# started here from Debian's binaries and stopped when the command ends.
set -euo pipefail

try_url() { "${PY:-.venv/bin/python}" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys, psycopg
with psycopg.connect(sys.argv[1], connect_timeout=3) as conn:
    conn.execute("select 1")
PYEOF
}

if [ -n "${SIDESTEP_TEST_PG_URL:-}" ]; then
  exec "$@"
fi
# SIDESTEP_TEST_PG_THROWAWAY=1 skips the running server (to test this script's own path).
[ "${SIDESTEP_TEST_PG_THROWAWAY:-0}" = 1 ] || for url in postgresql://postgres@127.0.0.1:5432/test postgresql://postgres@127.0.0.1:5432/postgres; do
  if try_url "$url"; then
    export SIDESTEP_TEST_PG_URL="$url"
    exec "$@"
  fi
done

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
  echo "No PostgreSQL server is reachable and none is installed: run scripts/ensure-test-packages.sh" >&2
  exit 1
fi
dir=$(mktemp -d /tmp/sidestep-pg.XXXXXX)
port=54329
run_as=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$dir" 2>/dev/null || { useradd -r postgres && chown postgres "$dir"; }
  run_as=(runuser -u postgres --)
fi
echo "Starting a throwaway PostgreSQL in $dir on 127.0.0.1:$port"
"${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
"${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
stop() { "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null || true; rm -rf "$dir"; }
trap stop EXIT
export SIDESTEP_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
"$@"
