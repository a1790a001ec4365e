#!/usr/bin/env bash
# The cost of metrics on a single node, on this machine, in one session:
#   scrape  GET /metrics on a node with 10,000 partitions (10 topics of 1,000): time of each of
#           20 scrapes (curl's time_total) and the size of the exposition.
#   load    W1 (durable maximum throughput) and W3 (5,000 records/s, ack latency) with the native
#           client, each run without and with a scrape every second, alternating, three times.
# Durability: acks=all, fsync before every acknowledgement (the default).
# Usage: scripts/bench-metrics.sh scrape|load
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-scrape}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
work=$(mktemp -d /tmp/strom-bench-metrics.XXXXXX)
addr=127.0.0.1:19592
http=127.0.0.1:19593
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$strom" serve --data-dir "$work/data" --kafka-addr $addr --etcd-addr '' --http-addr $http \
  --retention-check-interval-ms 1000 >>"$work/serve.log" 2>&1 &
pids+=($!)
sleep 3
scrape_times() {
  for _ in $(seq 1 "$1"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://$http/metrics"
  done | sort -n | awk '{a[NR]=$1} END {printf "scrapes %d  min %.1f ms  p50 %.1f ms  max %.1f ms\n", NR, a[1]*1000, a[int((NR+1)/2)]*1000, a[NR]*1000}'
}
case $mode in
scrape)
  for t in $(seq 1 10); do
    "$strom" topic create "t$t" -b $addr --partitions 1000 >/dev/null
  done
  echo "partitions: $(curl -s "http://$http/metrics" | grep -c '^strom_partition_high_watermark{')"
  echo "exposition: $(curl -s "http://$http/metrics" | wc -c) bytes"
  scrape_times 20
  ;;
load)
  # W1 writes ~12 GB a run: retention keeps the disk from filling up (1 GiB per partition).
  "$strom" topic create bench -b $addr --partitions 4 --config retention.bytes=1073741824 \
    --config segment.bytes=134217728 >/dev/null
  w1() { "$strom" bench produce -b $addr --topic bench --workload "W1 $1" --client native \
    --partitions 4 --producers 4 --message-size 1024 --acks all --warmup 3 --duration 15 \
    --rate 0 --linger-ms 5 | tail -1; }
  w3() { "$strom" bench produce -b $addr --topic bench --workload "W3 $1" --client native \
    --partitions 4 --producers 4 --message-size 1024 --acks all --warmup 3 --duration 15 \
    --rate 5000 --linger-ms 0 | tail -1; }
  scraping() { while true; do curl -s -o /dev/null "http://$http/metrics"; sleep 1; done; }
  for round in 1 2 3; do
    for w in w1 w3; do
      $w "no scrape"
      scraping & s=$!
      $w "1 s scrape"
      kill $s; wait $s 2>/dev/null || true
    done
  done
  ;;
esac
