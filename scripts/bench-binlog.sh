#!/usr/bin/env bash
# W9, binlog capture, on this machine: a private MariaDB (Debian's mariadb-server, UTC, ROW
# binlog; InnoDB's default innodb_flush_log_at_trx_commit=1, sync_binlog=0) and a single Strom
# node (release; acks=all, fsync before every acknowledgement, the default), the `mysql`
# connector between them, a confluent-kafka read_committed consumer. See bench_binlog.py.
# Usage: scripts/bench-binlog.sh bulk|lag
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-bulk}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
py=${STROM_PYTHON:-$HOME/.cache/strom/venv/bin/python}
work=$(mktemp -d /tmp/strom-bench-binlog.XXXXXX)
kafka=127.0.0.1:19692
http=127.0.0.1:19693
dbport=19694
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mariadb-install-db --no-defaults --user=root --auth-root-authentication-method=normal \
  --skip-test-db --datadir="$work/db" --tmpdir="$work" >/dev/null
mariadbd --no-defaults --datadir="$work/db" --tmpdir="$work" --user=root --port=$dbport --bind-address=127.0.0.1 \
  --socket="$work/db.sock" --log-bin="$work/db/binlog" --server-id=1 --binlog-format=ROW \
  --default-time-zone=+00:00 --innodb-buffer-pool-size=1G --log-error="$work/db.err" &
pids+=($!)
"$strom" serve --data-dir "$work/data" --kafka-addr $kafka --etcd-addr '' --http-addr $http \
  >>"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  mariadb --no-defaults --socket="$work/db.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.2
done
"$py" scripts/bench_binlog.py "$mode" $kafka "http://$http" $dbport
[ -z "${KEEP_LOG:-}" ] || cp "$work/serve.log" "$KEEP_LOG"
