#!/usr/bin/env bash
# Cross-cluster mirroring (docs/benchmarks.md, "Mirroring"): two single-node Strom clusters on
# this machine (release; acks=all, fsync before every acknowledgement on both), a `mirror`
# connector on the target copying from the source with the identity policy.
#   1. Throughput: RECORDS records of 1 KiB are written to the source first, then the mirror
#      is created; MB/s is their size over the time from its creation until the target holds
#      them all (each batch is one transaction on the target, with its source offsets).
#   2. Lag: `strom bench e2e` writes 5,000 records/s to the source and reads them on the target
#      (--tail-broker): produce to the source, mirror, read on the target, p50/p99 of the whole
#      way; then the same run against the source alone, as the baseline.
# Usage: scripts/bench-mirror.sh [RECORDS] [DURATION_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-1000000}
duration=${2:-30}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
work=$(mktemp -d /tmp/strom-bench-mirror.XXXXXX)
src=127.0.0.1:19892
dst=127.0.0.1:19893
http=127.0.0.1:19894
src_http=127.0.0.1:19895
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start() { # name, kafka address, more flags
  local name=$1 addr=$2; shift 2
  "$strom" serve --data-dir "$work/$name" --kafka-addr "$addr" --etcd-addr '' "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null && break; sleep 0.1; done
}
start source $src --http-addr $src_http
start target $dst --http-addr $http
sleep 1

connector() { # name, topics regex
  curl -sf -X POST -H 'content-type: application/json' "http://$http/connectors" --data "{
    \"name\": \"$1\", \"config\": {\"connector.class\": \"mirror\",
    \"source.cluster.alias\": \"source\", \"source.bootstrap.servers\": \"$src\",
    \"replication.policy.class\": \"identity\", \"topics\": \"$2\",
    \"refresh.topics.interval.seconds\": \"1\", \"emit.checkpoints.enabled\": \"false\"}}" >/dev/null
}
# A topic's offsets summed over its partitions (on the target: records plus one transaction
# marker per batch and partition, so "done" is seen a few hundred records early).
end_of() { # http address, topic
  curl -sf "http://$1/v1/topics/$2" | python3 -c '
import json, sys
t = json.load(sys.stdin)
print(sum((p.get("local") or {}).get("high_watermark", 0) for p in t.get("partitions", [])))'
}

# 1. Throughput.
rate=$(( records / 10 ))
"$strom" bench produce -b $src --topic mirror-load --partitions 4 --producers 4 \
  --message-size 1024 --acks all --warmup 0 --duration 10 --rate "$rate" --linger-ms 5 >/dev/null
loaded=$(end_of $src_http mirror-load)
start_ns=$(date +%s%N)
connector load mirror-load
while :; do
  got=$(end_of $http mirror-load 2>/dev/null || echo 0)
  [ "$got" -ge "$loaded" ] && break
  sleep 0.2
done
end_ns=$(date +%s%N)
secs=$(python3 -c "print(($end_ns - $start_ns) / 1e9)")
echo "throughput: $loaded records of 1 KiB mirrored in ${secs} s: $(python3 -c "print(round($loaded * 1024 / 1e6 / $secs, 1))") MB/s, $(python3 -c "print(round($loaded / $secs))") records/s"

# 2. Lag at 5,000 records/s through the mirror, then the source alone.
connector lag 'bench-.*'
"$strom" bench e2e -b $src --tail-broker $dst --workload "mirror 5k/s" --partitions 4 \
  --producers 4 --message-size 1024 --acks all --warmup 5 --duration "$duration" --rate 5000 \
  --linger-ms 0
"$strom" bench e2e -b $src --workload "source alone 5k/s" --partitions 4 --producers 4 \
  --message-size 1024 --acks all --warmup 5 --duration "$duration" --rate 5000 --linger-ms 0
