#!/usr/bin/env bash
# CPU per acknowledged record on the replicated write path (issue 20's "measure first"): three
# release nodes on this machine, a topic of 4 partitions with replication factor 3, librdkafka
# producers at a fixed rate with linger 0 (so every record is its own batch, and its own Raft
# entry) and acks=all. Each broker thread's CPU time (/proc/PID/task/TID/stat, user + system)
# is read before and after each run; the difference, summed over the three brokers and divided
# by the records acknowledged, is the cost of one replicated entry, broken down by thread name
# (digits dropped, so the Tokio workers or the flushers of all three nodes add up). The same
# CPU is also divided by the Raft entries the leaders appended (strom_topic_appends_total: a
# client batches whatever queued while its requests were in flight, so an entry may hold
# several records even with linger 0; the faster the cluster answers, the fewer per entry).
# Usage: scripts/bench-replication-cpu.sh [DURATION_SECS] [RATE...]
# STROM_BIN=path runs that binary instead of building this checkout (an A/B of two builds).
# PARTITIONS=n (default 4) spreads the load over n partitions (n Raft groups).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
partitions=${PARTITIONS:-4}
shift || true
[ $# -gt 0 ] && rates=("$@") || rates=(1000 5000)
if [ -z "${STROM_BIN:-}" ]; then
  cargo build --release -q -p strom
fi
strom=${STROM_BIN:-${CARGO_TARGET_DIR:-target}/release/strom}
work=$(mktemp -d /tmp/strom-bench-cpu.XXXXXX)
peers=1@127.0.0.1:31301,2@127.0.0.1:31302,3@127.0.0.1:31303
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for i in 1 2 3; do
  "$strom" serve --data-dir "$work/n$i" --node-id $i --kafka-addr "127.0.0.1:3140$i" \
    --raft-addr "127.0.0.1:3130$i" --peers $peers --cluster-secret bench-cpu \
    --etcd-addr '' --http-addr "127.0.0.1:3150$i" >>"$work/n$i.log" 2>&1 &
  pids+=($!)
done
sleep 8
"$strom" topic create cpu -b 127.0.0.1:31401 --partitions "$partitions" --replication-factor 3 >/dev/null
sleep 3

# "name ticks" for every thread of the brokers (clock ticks; 100 per second).
threads() {
  for p in "${pids[@]}"; do
    for t in /proc/$p/task/*/stat; do
      # The name is in parentheses and may hold spaces: split around the last ')'.
      sed -E 's/^[0-9]+ \((.*)\) (.*)$/\1\t\2/' "$t" 2>/dev/null |
        awk -F'\t' '{ split($2, f, " "); name = $1; gsub(/[0-9]+/, "", name); print name "\t" f[12] + f[13] }'
    done
  done | awk -F'\t' '{ s[$1] += $2 } END { for (n in s) print n "\t" s[n] }' | sort
}

# "appends fsyncs" of the three brokers: the topic's appends (Raft entries, counted by their
# leaders) and every log fsync.
counters() {
  for i in 1 2 3; do curl -sf "http://127.0.0.1:3150$i/metrics"; done |
    awk '/^strom_topic_appends_total\{topic="cpu"\}/ { a += $2 }
         /^strom_fsync_duration_seconds_count/ { f += $2 }
         END { print a + 0, f + 0 }'
}

# The CPU each thread group spent between the "before" and "after" snapshots, in microseconds
# (a tick is 10 ms), divided by $1 and printed with unit $2.
report() {
  join -t $'\t' -a 2 -e 0 -o 0,1.2,2.2 "$work/before" "$work/after" |
    awk -F'\t' -v per="$1" -v unit="$2" '
      { d = ($3 - $2) * 10000 / per; if (d > 0) { v[$1] = d; total += d } }
      END {
        for (t in v) printf "  %-24s %10.1f %s\n", t, v[t], unit | "sort -k2 -nr"
        close("sort -k2 -nr")
        printf "  %-24s %10.1f %s  (all three brokers)\n", "total", total, unit
      }'
}

# Idle first: what the three nodes spend with no traffic (ticks, heartbeats, timers).
threads >"$work/before"
sleep "$duration"
threads >"$work/after"
echo "== idle: broker CPU per second, by thread:"
report "$duration" "us/s"

for rate in "${rates[@]}"; do
  threads >"$work/before"
  read -r appends0 fsyncs0 < <(counters)
  out=$("$strom" bench produce -b 127.0.0.1:31401 --topic cpu --partitions "$partitions" --producers 4 \
    --message-size 1024 --acks all --warmup 0 --duration "$duration" --rate "$rate" --linger-ms 0 \
    --workload "rate-$rate")
  threads >"$work/after"
  read -r appends1 fsyncs1 < <(counters)
  echo "$out" | tail -2
  records=$(echo "$out" | tail -1 | awk '{print $8}')
  echo "== $rate records/s: $records records acknowledged; broker CPU per record, by thread:"
  report "$records" "us"
  entries=$((appends1 - appends0))
  awk -v r="$records" -v e="$entries" -v f="$((fsyncs1 - fsyncs0))" 'BEGIN {
    printf "== %d Raft entries (%.2f records each), %.2f fsyncs per entry; broker CPU per entry, by thread:\n", e, r / e, f / e }'
  report "$entries" "us"
done
