#!/usr/bin/env bash
# Compaction benchmarks on a single node, on this machine, in one session:
#   interference  W1 and W3 (docs/benchmarks.md) while the cleaner compacts ~3 GB of a keyed
#                 topic (throttled to --log-cleaner-io-bytes-per-sec 200 MB/s), then once it is
#                 idle; the broker logs each pass's time and MB/s ("cleaned ...").
#   offsets       10 million offset commits (10 groups x 100 partitions x 10,000 rounds), then
#                 the time the group coordinator takes to load __consumer_offsets at start
#                 ("rebuilt committed offsets ... elapsed_ms"), before and after cleaning.
#   cluster       3 nodes, RF 3: 1 million offset commits, cleaning, then a restart of all:
#                 __consumer_offsets on disk and the records each new coordinator replays.
# Usage: scripts/bench-compaction.sh interference|offsets|cluster
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-interference}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
python=${STROM_PYTHON:-$HOME/.cache/strom/venv/bin/python}
work=$(mktemp -d /tmp/strom-bench-compaction.XXXXXX)
addr=127.0.0.1:19392
log=$work/serve.log
pid=
start() {
  "$strom" serve --data-dir "$work/data" --kafka-addr $addr --etcd-addr '' --http-addr '' "$@" >>"$log" 2>&1 &
  pid=$!
  sleep 3
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
passes() { grep -c "cleaned" "$log" || true; }
show_passes() { sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "cleaned" | sed -E 's/.* cleaned //; s/.*(partition=[^ ]*).*(elapsed_ms=[0-9]*).*(mb_per_sec="[0-9.]*").*(bytes_before=[0-9]*).*(bytes_after=[0-9]*).*/\1 \2 \3 \4 \5/'; }
# Offset commits of one group to partitions 0..99 of topic "ot": commits ADDR GROUP ROUNDS.
commits() { "$python" "$work/commits.py" "$@"; }
cat >"$work/commits.py" <<'PY'
import sys
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata
bootstrap, group, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
tps = [TopicPartition("ot", p) for p in range(100)]
for r in range(rounds):
    c.commit({tp: OffsetAndMetadata(r, "", -1) for tp in tps})
PY
# __consumer_offsets compacted with smaller segments: offsets_segments ADDR BYTES.
offsets_segments() {
  "$python" - "$1" "$2" <<'PY'
import sys
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
KafkaAdminClient(bootstrap_servers=sys.argv[1]).alter_configs([ConfigResource(
    ConfigResourceType.TOPIC, "__consumer_offsets", configs={"cleanup.policy": "compact",
    "segment.bytes": sys.argv[2], "retention.ms": "-1", "max.message.bytes": "1048588"})])
PY
}
loaded() { sed 's/\x1b\[[0-9;]*m//g' "$log" | grep "rebuilt committed offsets" | tail -1 | sed -E 's/.*(records=[0-9]*).*(elapsed_ms=[0-9]*).*/\1 \2/'; }

case $mode in
interference)
  start --log-cleaner-enable false
  "$strom" topic create ck -b $addr --partitions 4 --config cleanup.policy=compact \
    --config segment.bytes=67108864 >/dev/null
  "$strom" topic create w -b $addr --partitions 4 >/dev/null
  for workload in W1 W3; do
    stop; start --log-cleaner-enable false
    echo "== fill ck: 1 KiB records over 20,000 keys for 12 s"
    "$strom" bench produce -b $addr --topic ck --partitions 4 --producers 4 --message-size 1024 \
      --keys 20000 --rate 0 --warmup 0 --duration 12 | tail -1
    : >"$log"
    stop; start --log-cleaner-io-bytes-per-sec 200000000
    for phase in cleaning idle; do
      if [ $phase = idle ]; then
        while [ "$(passes)" -lt 4 ]; do sleep 1; done
      fi
      echo "== $workload while $phase ($(passes) of 4 partitions cleaned when it starts)"
      if [ $workload = W1 ]; then
        "$strom" bench produce -b $addr --topic w --workload "W1 $phase" --partitions 4 \
          --producers 4 --message-size 1024 --rate 0 --acks all --linger-ms 5 --warmup 2 \
          --duration 10 | tail -2
      else
        "$strom" bench e2e -b $addr --topic w --workload "W3 $phase" --partitions 4 \
          --producers 4 --message-size 1024 --rate 5000 --acks all --linger-ms 0 --warmup 2 \
          --duration 10 | tail -3
      fi
    done
    show_passes
  done
  ;;
offsets)
  start --log-cleaner-enable false
  "$strom" topic create ot -b $addr --partitions 100 >/dev/null
  echo "== 10 million commits"
  time (for g in 0 1 2 3 4 5 6 7 8 9; do commits $addr "group-$g" 10000 & done; wait)
  du -sh "$work"/data/__consumer_offsets-* | awk '{s=s" "$1} END {print "__consumer_offsets partitions:" s}'
  stop; start --log-cleaner-enable false
  echo "== load before cleaning: $(loaded)"
  # Kafka's 100 MiB segments would leave most of this history in active segments; 10 MiB
  # segments let the cleaner at it. A commit per group rolls the big active segments.
  offsets_segments $addr 10485760
  for g in 0 1 2 3 4 5 6 7 8 9; do commits $addr "group-$g" 1; done
  stop; : >"$log"; start
  while [ "$(passes)" -lt 8 ]; do sleep 1; done
  show_passes
  du -sh "$work"/data/__consumer_offsets-* | awk '{s=s" "$1} END {print "__consumer_offsets partitions:" s}'
  stop; start
  echo "== load after cleaning: $(loaded)"
  ;;
cluster)
  peers=1@127.0.0.1:31101,2@127.0.0.1:31102,3@127.0.0.1:31103
  pids=()
  node() {
    "$strom" serve --data-dir "$work/n$1" --node-id "$1" --kafka-addr "127.0.0.1:3120$1" \
      --raft-addr "127.0.0.1:3110$1" --peers $peers --cluster-secret bench-compaction \
      --etcd-addr '' --http-addr '' >>"$work/n$1.log" 2>&1 &
    pids[$1]=$!
  }
  stop_nodes() { for i in 1 2 3; do kill "${pids[$i]}"; wait "${pids[$i]}" 2>/dev/null || true; done; }
  replays() {
    sed 's/\x1b\[[0-9;]*m//g' "$work"/n*.log | grep "coordinating the groups" |
      sed -E 's/.*(__consumer_offsets-[0-9]*).*(records=[0-9]*).*/\1 \2/' | sort | tr '\n' ' '
    echo
  }
  trap 'stop_nodes 2>/dev/null; rm -rf "$work"' EXIT
  for i in 1 2 3; do node $i; done
  sleep 8
  "$strom" topic create ot -b 127.0.0.1:31201 --partitions 100 --replication-factor 3 >/dev/null
  echo "== 1 million commits"
  time (for g in 0 1 2 3 4 5 6 7 8 9; do commits 127.0.0.1:31201 "group-$g" 1000 & done; wait)
  du -sh "$work"/n1/__consumer_offsets-* | awk '{s=s" "$1} END {print "node 1, before:" s}'
  offsets_segments 127.0.0.1:31201 1048576
  sleep 2
  for g in 0 1 2 3 4 5 6 7 8 9; do commits 127.0.0.1:31201 "group-$g" 1; done
  while [ "$(sed 's/\x1b\[[0-9;]*m//g' "$work"/n*.log | grep -c ' cleaned ')" -lt 24 ]; do sleep 1; done
  du -sh "$work"/n1/__consumer_offsets-* | awk '{s=s" "$1} END {print "node 1, after:" s}'
  stop_nodes
  for i in 1 2 3; do : >"$work/n$i.log"; node $i; done
  sleep 15
  echo "== replayed by the coordinators after a restart of all: $(replays)"
  ;;
*)
  echo "usage: $0 interference|offsets|cluster" >&2
  exit 2
  ;;
esac
