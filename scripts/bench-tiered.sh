#!/usr/bin/env bash
# Tiered storage benchmarks on a single node, on this machine, in one session:
#   capacity  a topic of SIZE GiB (default 20; 4 partitions, 128 MiB segments) whose local part is
#             capped at 1 GiB (local.retention.bytes 256 MiB per partition) on a local-directory
#             store: disk use of the data directory and of the store once uploads caught up, then
#             W10, the catch-up read of 1 GiB from the beginning (from the store, through the
#             read cache), next to the same read of a topic held on local disk.
#   s3        the same W10 against a moto S3 server (holds objects in memory; 3 GiB topic).
# Durability: acks=all, fsync before every acknowledgement (the default).
# Usage: scripts/bench-tiered.sh capacity|s3 [SIZE_GIB]
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-capacity}
gib=${2:-20}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
python=${STROM_PYTHON:-$HOME/.cache/strom/venv/bin/python}
work=$(mktemp -d /tmp/strom-bench-tiered.XXXXXX)
addr=127.0.0.1:19492
log=$work/serve.log
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
serve() {
  "$strom" serve --data-dir "$work/data" --kafka-addr $addr --etcd-addr '' --http-addr '' \
    --tier-interval-ms 1000 --retention-check-interval-ms 1000 "$@" >>"$log" 2>&1 &
  pids+=($!)
  sleep 3
}
tiered_topic() {
  "$strom" topic create "$1" -b $addr --partitions 4 --config remote.storage.enable=true \
    --config segment.bytes=134217728 --config local.retention.bytes=268435456 \
    --config retention.ms=-1 >/dev/null
}
# MiB of log on local disk (the read cache, also in the data directory, aside).
local_mib() { du -sm --exclude=tier-cache "$work/data" | cut -f1; }
# Waits until the local log holds at most $1 MiB (uploads caught up, local copies gone).
settle() {
  local t0=$SECONDS
  while [ "$(local_mib)" -gt "$1" ]; do sleep 2; done
  echo "uploads caught up $((SECONDS - t0)) s after the load"
}
fill() { "$strom" bench consume -b $addr --topic "$1" --partitions 4 --producers 4 \
  --message-size 1024 --fill --bytes "$2" --workload "fill $1" | tail -1; }
read_1g() { "$strom" bench consume -b $addr --topic "$1" --partitions 4 --consumers 1 \
  --message-size 1024 --bytes 1GiB --workload "$2" | tail -2; }

case $mode in
capacity)
  serve --tier-url "file://$work/store"
  tiered_topic big
  "$strom" topic create local -b $addr --partitions 4 >/dev/null
  echo "== load: ${gib} GiB into a topic whose local part is capped at 1 GiB"
  fill big "${gib}GiB"
  settle 1100
  echo "local log: $(local_mib) MiB   read cache: $(du -sm "$work/data/tier-cache" | cut -f1) MiB   store: $(du -sm "$work/store" | cut -f1) MiB"
  fill local 1GiB
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped: not root)"
  echo "== W10: catch-up read of 1 GiB"
  read_1g big "W10 from the store (file://)"
  read_1g local "W10 from local disk"
  ;;
s3)
  port=19493
  "$python" -m moto.server -H 127.0.0.1 -p $port >/dev/null 2>&1 &
  pids+=($!)
  sleep 3
  "$python" -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$port', aws_access_key_id='x', aws_secret_access_key='x', region_name='us-east-1').create_bucket(Bucket='bench')"
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=x \
    AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1
  serve --tier-url "s3://bench/strom"
  tiered_topic big
  "$strom" topic create local -b $addr --partitions 4 >/dev/null
  echo "== load: 3 GiB into a topic whose local part is capped at 1 GiB"
  fill big 3GiB
  settle 1100
  fill local 1GiB
  echo "== W10: catch-up read of 1 GiB"
  read_1g big "W10 from S3 (moto)"
  read_1g local "W10 from local disk"
  ;;
*) echo "usage: $0 capacity|s3 [SIZE_GIB]" >&2; exit 2 ;;
esac
