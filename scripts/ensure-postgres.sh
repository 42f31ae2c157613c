#!/usr/bin/env bash
# Make sure the PostgreSQL the test suite uses is up; start the local cluster if it is down.
set -euo pipefail
host="${REFUNDS_TEST_PG_HOST:-127.0.0.1}"
port="${REFUNDS_TEST_PG_PORT:-5432}"
if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "PostgreSQL at $host:$port is down; starting the local cluster"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h "$host" -p "$port" && exit 0; sleep 1; done
fi
echo "PostgreSQL is not reachable at $host:$port: the test suite needs it" >&2
exit 1
