#!/usr/bin/env bash
# Strom's etcd API against a real etcd (Debian's etcd-server), single node each, on this
# machine in one session: `strom bench kv` drives both the same way. Both fsync before they
# acknowledge a write (etcd's WAL, Strom's journal). With `cluster`, three nodes of each, the
# clients spread over the three endpoints. Usage: scripts/bench-kv.sh [seconds] [single|cluster]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
mode=${2:-single}
command -v etcd >/dev/null || { echo "needs etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
work=$(mktemp -d /tmp/strom-bench-kv.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
if [ "$mode" = cluster ]; then
  peers=1@127.0.0.1:31001,2@127.0.0.1:31002,3@127.0.0.1:31003
  members=e1=http://127.0.0.1:22381,e2=http://127.0.0.1:22382,e3=http://127.0.0.1:22383
  for i in 1 2 3; do
    "$strom" serve --data-dir "$work/strom$i" --kafka-addr 127.0.0.1:3909$i --etcd-addr 127.0.0.1:3237$i --http-addr '' \
      --node-id $i --raft-addr 127.0.0.1:3100$i --peers $peers --cluster-secret bench-secret \
      --log-level warn >"$work/strom$i.log" 2>&1 &
    pids+=($!)
    etcd --name e$i --data-dir "$work/etcd$i" --listen-client-urls http://127.0.0.1:2237$i \
      --advertise-client-urls http://127.0.0.1:2237$i --listen-peer-urls http://127.0.0.1:2238$i \
      --initial-advertise-peer-urls http://127.0.0.1:2238$i --initial-cluster $members \
      >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
  done
  strom_ep=127.0.0.1:32371,127.0.0.1:32372,127.0.0.1:32373
  etcd_ep=127.0.0.1:22371,127.0.0.1:22372,127.0.0.1:22373
else
  "$strom" serve --data-dir "$work/strom" --kafka-addr 127.0.0.1:39092 --etcd-addr 127.0.0.1:32379 --http-addr '' \
    --log-level warn >"$work/strom.log" 2>&1 &
  pids+=($!)
  etcd --name bench --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:22379 \
    --advertise-client-urls http://127.0.0.1:22379 --listen-peer-urls http://127.0.0.1:22380 \
    --initial-advertise-peer-urls http://127.0.0.1:22380 --initial-cluster bench=http://127.0.0.1:22380 \
    >"$work/etcd.log" 2>&1 &
  pids+=($!)
  strom_ep=127.0.0.1:32379
  etcd_ep=127.0.0.1:22379
fi
sleep 5
run() { # label endpoint args...
  local label=$1 ep=$2; shift 2
  "$strom" bench kv --endpoints "$ep" --duration "$secs" --workload "$label" "$@" | tail -n +2
}
echo "workload  op  clients  target/s  ops/s  p50_ms  p99_ms  p99.9_ms  max_ms  errors"
for round in 1 2; do
  for sys in "strom:$strom_ep" "etcd:$etcd_ep"; do
    name=${sys%%:*} ep=${sys#*:}
    run "$name-put-max-16" "$ep" --op put --clients 16
    run "$name-put-max-64" "$ep" --op put --clients 64
    run "$name-put-1000/s" "$ep" --op put --clients 16 --rate 1000
    run "$name-get-1000/s" "$ep" --op get --clients 16 --rate 1000
  done
done
