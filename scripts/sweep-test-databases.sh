#!/usr/bin/env bash
# scripts/sweep-test-databases.sh — drop the Postgres and ClickHouse databases tests made
# (`cinema_test_p<pid>_<uuid>`, host/tests/common) whose test process has ended. `make test`
# runs it last; every test binary also sweeps on its first database, so a crashed run's
# leftovers go at the start of the next. Databases of a test process still running stay.
set -euo pipefail
POSTGRES=${CINEMA_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432}
CLICKHOUSE=${CINEMA_TEST_CLICKHOUSE:-http://127.0.0.1:8123}

# Whether the test process that made database $1 still runs.
in_use() {
  local pid=${1#cinema_test_p}
  pid=${pid%%_*}
  [[ $pid =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ]
}

postgres=0
while read -r name; do
  [ -n "$name" ] || continue
  in_use "$name" && continue
  psql "$POSTGRES/postgres?sslmode=disable" -qAtc "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
  postgres=$((postgres + 1))
done < <(psql "$POSTGRES/postgres?sslmode=disable" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'cinema\_test\_%'")

clickhouse=0
if names=$(curl -sf "$CLICKHOUSE/" --data-binary "SELECT name FROM system.databases WHERE startsWith(name, 'cinema_test_')"); then
  while read -r name; do
    [ -n "$name" ] || continue
    in_use "$name" && continue
    curl -sf "$CLICKHOUSE/" --data-binary "DROP DATABASE IF EXISTS \`$name\`" >/dev/null
    clickhouse=$((clickhouse + 1))
  done <<< "$names"
else
  echo "sweep-test-databases: ClickHouse did not answer at $CLICKHOUSE; its test databases stay" >&2
fi
echo "sweep-test-databases: dropped $postgres Postgres and $clickhouse ClickHouse test databases"
