#!/usr/bin/env bash
# The cost of TLS and SASL (docs/benchmarks.md, "Security"): W1 (maximum throughput) and W3
# (5,000 records/s, ack latency) with librdkafka or the native client, back to back against
# single nodes (release;
# acks=all, fsync before every acknowledgement):
#   plain       zero-config: PLAINTEXT, no authorizer
#   plain+acl   PLAINTEXT with the authorizer on (User:ANONYMOUS allowed by prefixed ACLs)
#   sasl_ssl    SASL_SSL, SCRAM-SHA-512, TLS 1.3, a user allowed by prefixed ACLs
# Each W1 run also prints the broker's CPU per acknowledged record (/proc/PID/stat).
# Usage: scripts/bench-security.sh [DURATION_SECS] [rdkafka|native]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-15}
client=${2:-rdkafka}
cargo build --release -q -p strom
strom=${CARGO_TARGET_DIR:-target}/release/strom
work=$(mktemp -d /tmp/strom-bench-security.XXXXXX)
plain=127.0.0.1:19792
sasl_ssl=127.0.0.1:19793
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$strom" cert ca --dir "$work/certs" >/dev/null
"$strom" cert issue node --dir "$work/certs" --host 127.0.0.1 >/dev/null

start() { # data dir, serve flags...
  local dir=$1; shift
  "$strom" serve --data-dir "$work/$dir" --etcd-addr '' --http-addr '' "$@" >>"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/19792) 2>/dev/null && break; sleep 0.1; done
  sleep 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }

run() { # label, broker flags...
  local label=$1; shift
  local before after
  before=$(cpu_ticks)
  "$strom" bench produce "$@" --client "$client" --workload "W1 $label" --partitions 4 \
    --producers 4 --message-size 1024 --acks all --warmup 3 --duration "$duration" --rate 0 \
    --linger-ms 5
  after=$(cpu_ticks)
  # Divided by (3 + duration) s times W1's records/s: the broker's CPU per record.
  echo "W1 $label: broker CPU $(( (after - before) * 10 )) ms over $((3 + duration)) s (warmup included)"
  "$strom" bench produce "$@" --client "$client" --workload "W3 $label" --partitions 4 --producers 4 \
    --message-size 1024 --acks all --warmup 3 --duration "$duration" --rate 5000 --linger-ms 0
}

start plain --kafka-addr $plain
run plain -b $plain
stop

export STROM_BOOTSTRAP_USER=admin STROM_BOOTSTRAP_PASSWORD=admin-secret
start secured --kafka-listeners "PLAINTEXT://$plain,SASL_SSL://$sasl_ssl" \
  --tls-cert "$work/certs/node.pem" --tls-key "$work/certs/node-key.pem" --tls-ca "$work/certs/ca.pem"
admin=(-b $sasl_ssl --user admin --password admin-secret --tls-ca "$work/certs/ca.pem")
sleep 1
STROM_NEW_PASSWORD=bench-secret "$strom" user create bench "${admin[@]}" >/dev/null
for p in User:ANONYMOUS User:bench; do
  "$strom" acl create "${admin[@]}" --topic bench- --prefixed --allow-principal $p \
    --operation Read,Write,Create,Describe,Delete >/dev/null
  "$strom" acl create "${admin[@]}" --group '*' --allow-principal $p --operation Read >/dev/null
  "$strom" acl create "${admin[@]}" --cluster --allow-principal $p --operation IdempotentWrite >/dev/null
done
run plain+acl -b $plain
run sasl_ssl -b $sasl_ssl --user bench --password bench-secret --sasl-mechanism SCRAM-SHA-512 \
  --tls-ca "$work/certs/ca.pem"
stop
