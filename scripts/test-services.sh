#!/usr/bin/env bash
# What the tests need of the machine's own services, set up when it is not: the bridge's postgres
# source (logical replication, pgoutput) needs PostgreSQL's wal_level = logical, which a fresh
# machine's PostgreSQL does not have. `npm test` runs this first (so does .ci/run, through it). Set
# once, then PostgreSQL is restarted; where that cannot be done it says why and the tests go on
# (the postgres tests then fail, naming wal_level).
set -uo pipefail
pg_sql() { psql -h 127.0.0.1 -U postgres -d test -Atqc "$1" 2>/dev/null; }
level=$(pg_sql 'show wal_level') || level=""
if [ -z "$level" ]; then
  echo "[test] PostgreSQL on 127.0.0.1:5432 did not answer: the postgres bridge tests will fail" >&2
  exit 0
fi
[ "$level" = "logical" ] && exit 0
echo "[test] PostgreSQL: setting wal_level = logical (the bridge's postgres source needs it) and restarting it"
if ! pg_sql "ALTER SYSTEM SET wal_level = logical" >/dev/null; then
  echo "[test] could not set wal_level (ALTER SYSTEM needs a superuser): the postgres bridge tests will fail" >&2
  exit 0
fi
cluster=$(ls /etc/postgresql 2>/dev/null | head -1)
if [ -z "$cluster" ] || ! pg_ctlcluster --skip-systemctl-redirect "$cluster" main restart; then
  echo "[test] could not restart PostgreSQL: restart it yourself for wal_level = logical to take effect" >&2
  exit 0
fi
for _ in $(seq 1 60); do pg_sql 'select 1' >/dev/null && break; sleep 1; done
if [ "$(pg_sql 'show wal_level')" != "logical" ]; then
  echo "[test] PostgreSQL did not come back with wal_level = logical" >&2
  exit 1
fi
