#!/usr/bin/env bash
# Runs librdkafka's own integration test suite (the tests/ directory of a librdkafka source tree)
# against a Strom this script starts, and prints one line per test: result and seconds.
#
#   scripts/librdkafka-suite.sh [--cluster] /path/to/librdkafka [TEST_NUMBER...]
#
# The librdkafka tree must already be built, tests included (see docs/compatibility.md for how);
# this script downloads and builds nothing. Without test numbers it runs every test of the
# 0000-0999 series, which is what librdkafka's `make` runs (manual 8xxx tests are left out).
#
# How it runs: one `tests/test-runner` process per test number (TESTS=NNNN), at the suite's full
# level (no -Q quick mode), TEST_KAFKA_VERSION=3.9.0, one sub-test at a time (-p1), with a test.conf
# holding only bootstrap.servers. Each test number runs twice: in the "default" scenario against
# a node with topic auto-creation on, and in the "noautocreate" scenario against a node with it
# off (only a few tests, e.g. 0045's topic-removal sub-tests, 0107 and 0111, belong to it), both
# with 4 partitions per auto-created topic like the suite's scenarios (tests/scenarios/*.json).
# Every Strom node is started here on 127.0.0.1 with a fresh data directory and stopped by PID.
#
# --cluster (or SUITE_CLUSTER=1): three nodes with --peers instead of one, for the tests that
# create replication-factor-3 topics; without test numbers it runs 0098 0101 0107 0111.
#
# Tests that shell out to a Kafka distribution ($KAFKA_PATH/bin/kafka-topics.sh, kafka-acls.sh,
# Java helper programs) get a small stand-in kafka-topics.sh that creates and deletes topics
# with `strom topic`; set KAFKA_PATH to a real Kafka distribution to use that instead.
#
# Environment (all optional):
#   STROM_BIN            strom binary [target/release/strom, then target/debug/strom, also under
#                        $CARGO_TARGET_DIR and ~/.cache/strom/target]
#   SUITE_OUT            directory for test.conf, logs and data [a new /tmp/librdkafka-suite.*]
#   SUITE_PORT           first Kafka port [19392]; cluster nodes use the next two as well, and
#                        Raft uses SUITE_PORT+10..+12
#   SUITE_TEST_TIMEOUT   seconds after which a test-runner process is killed [1800]; the suite's
#                        own per-test timeouts normally fire long before
#   SUITE_RUNNER_ARGS    arguments for test-runner [-p1]; e.g. "-p1 -Q" for quick mode, "-p1 -P"
#                        for the idempotent-producer variant
#   SUITE_STROM_LOG      strom --log-level [info]
#   STROM_CLUSTER_SECRET node-to-node secret in --cluster mode [a random one]
#   TEST_KAFKA_VERSION   broker version the suite assumes [3.9.0]
#
# Output: the summary table on stdout; per-test logs (<phase>/<NNNN>.log), Strom's logs and
# results.tsv stay in $SUITE_OUT. Exit status 1 if any test failed.
set -euo pipefail

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

die() {
  echo "librdkafka-suite: $*" >&2
  exit 2
}

cluster="${SUITE_CLUSTER:-0}"
while (($#)) && [[ $1 == -* ]]; do
  case $1 in
    --cluster) cluster=1 ;;
    -h | --help) usage 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
(($#)) || usage
rdk_dir="$(cd "$1" && pwd)" || die "no such directory: $1"
shift
tests_dir="$rdk_dir/tests"

# --- The built librdkafka tree --------------------------------------------------------------
[ -f "$tests_dir/test.c" ] || die "$rdk_dir does not look like a librdkafka source tree (no tests/test.c)"
if [ ! -x "$tests_dir/test-runner" ] || [ ! -e "$rdk_dir/src/librdkafka.so.1" ]; then
  die "librdkafka's tests are not built in $rdk_dir: build the library and then the tests
(tests/test-runner) first, as described in docs/compatibility.md"
fi

# --- The strom binary -----------------------------------------------------------------------
repo="$(cd "$(dirname "$0")/.." && pwd)"
strom="${STROM_BIN:-}"
if [ -z "$strom" ]; then
  for dir in "$repo/target" "${CARGO_TARGET_DIR:-$repo/target}" "$HOME/.cache/strom/target"; do
    for profile in release debug; do
      if [ -z "$strom" ] && [ -x "$dir/$profile/strom" ]; then strom="$dir/$profile/strom"; fi
    done
  done
fi
[ -n "$strom" ] && [ -x "$strom" ] || die "no strom binary: build one (cargo build --release) or set STROM_BIN"
strom="$(cd "$(dirname "$strom")" && pwd)/$(basename "$strom")"

# --- Settings -------------------------------------------------------------------------------
port="${SUITE_PORT:-19392}"
raft_port=$((port + 10))
test_timeout="${SUITE_TEST_TIMEOUT:-1800}"
read -r -a runner_args <<<"${SUITE_RUNNER_ARGS:--p1}"
kafka_version="${TEST_KAFKA_VERSION:-3.9.0}"
out="${SUITE_OUT:-$(mktemp -d /tmp/librdkafka-suite.XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

if (($#)); then
  tests=("$@")
elif ((cluster)); then
  tests=(0098 0101 0107 0111)
else
  # The 0000-0999 series, from the test sources (the same set the tests' Makefile compiles).
  mapfile -t tests < <(cd "$tests_dir" && ls [0-9][0-9][0-9][0-9]-*.c [0-9][0-9][0-9][0-9]-*.cpp |
    cut -c1-4 | grep '^0' | sort -u)
fi
for t in "${tests[@]}"; do
  [[ $t =~ ^[0-9]{4}$ ]] || die "not a test number: $t (expected four digits, e.g. 0001)"
done

if ((cluster)); then
  node_ids=(1 2 3)
  bootstrap="127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"
  peers="1@127.0.0.1:$raft_port,2@127.0.0.1:$((raft_port + 1)),3@127.0.0.1:$((raft_port + 2))"
  export STROM_CLUSTER_SECRET="${STROM_CLUSTER_SECRET:-suite-$RANDOM$RANDOM$RANDOM$RANDOM}"
else
  node_ids=(0)
  bootstrap="127.0.0.1:$port"
fi

# The suite's configuration file: only the bootstrap servers.
printf 'bootstrap.servers=%s\n' "$bootstrap" >"$out/test.conf"

# A stand-in for the Kafka distribution's kafka-topics.sh, unless a real one is given.
if [ -z "${KAFKA_PATH:-}" ]; then
  kafka_path="$out/kafka-stand-in"
  mkdir -p "$kafka_path/bin"
  cat >"$kafka_path/bin/kafka-topics.sh" <<'EOF'
#!/usr/bin/env bash
# Stand-in for Kafka's kafka-topics.sh written by scripts/librdkafka-suite.sh: --create and
# --delete through `strom topic`. Anything else is refused.
set -euo pipefail
op="" topic="" partitions=-1 rf=-1 bootstrap="" configs=()
while (($#)); do
  case $1 in
    --bootstrap-server) bootstrap=$2; shift 2 ;;
    --create | --delete | --alter | --list | --describe) op=${1#--}; shift ;;
    --topic) topic=$2; shift 2 ;;
    --partitions) partitions=$2; shift 2 ;;
    --replication-factor) rf=$2; shift 2 ;;
    --config) configs+=(--config "$2"); shift 2 ;;
    *) echo "kafka-topics.sh stand-in: unsupported argument $1" >&2; exit 2 ;;
  esac
done
case $op in
  create) exec "$STROM_BIN" topic create "$topic" --partitions "$partitions" \
    --replication-factor "$rf" "${configs[@]}" -b "$bootstrap" ;;
  delete) exec "$STROM_BIN" topic delete "$topic" -b "$bootstrap" ;;
  *) echo "kafka-topics.sh stand-in: --$op is not supported (needs a Kafka distribution in KAFKA_PATH)" >&2
    exit 2 ;;
esac
EOF
  chmod +x "$kafka_path/bin/kafka-topics.sh"
else
  kafka_path="$KAFKA_PATH"
fi

# --- Strom nodes ----------------------------------------------------------------------------
node_pids=()

start_nodes() { # phase auto_create
  local phase=$1 auto_create=$2 i id args
  node_pids=()
  for i in "${!node_ids[@]}"; do
    id=${node_ids[$i]}
    # Four partitions for auto-created topics, as the suite's scenarios configure Kafka.
    args=(serve --data-dir "$out/$phase/data-$id" --kafka-addr "127.0.0.1:$((port + i))" --etcd-addr '' --http-addr ''
      --auto-create-topics "$auto_create" --default-partitions 4
      --log-level "${SUITE_STROM_LOG:-info}")
    if ((cluster)); then
      args+=(--node-id "$id" --raft-addr "127.0.0.1:$((raft_port + i))" --peers "$peers")
    fi
    "$strom" "${args[@]}" >>"$out/$phase/strom-$id.log" 2>&1 &
    node_pids+=($!)
  done
  wait_ready
}

wait_ready() {
  local deadline=$((SECONDS + 60))
  until "$strom" topic list -b "$bootstrap" >/dev/null 2>&1; do
    nodes_alive || die "a strom node exited on start; see $out/$phase/strom-*.log"
    ((SECONDS < deadline)) || die "strom did not answer on $bootstrap within 60 s"
    sleep 0.5
  done
}

nodes_alive() {
  local pid
  for pid in "${node_pids[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

stop_nodes() {
  local pid i
  for pid in "${node_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${node_pids[@]}"; do
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  node_pids=()
}
runner_pid=""
on_exit() {
  if [ -n "$runner_pid" ]; then kill -TERM "$runner_pid" 2>/dev/null || true; fi
  stop_nodes
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- Running one test number ----------------------------------------------------------------
# Appends one line per sub-test to $out/subtests.tsv: number, phase, sub-test, state, seconds,
# reason. The state comes from the summary table test-runner prints on exit.
run_test() { # number phase scenario
  local num=$1 phase=$2 scenario=$3 log rc=0 start secs lines
  log="$out/$phase/$num.log"
  start=$(date +%s%N)
  # In the background so that an interrupt can stop it (timeout runs it in its own process
  # group); the braces keep bash's "Aborted"/"Killed" job notices out of the output.
  {
    (
      cd "$tests_dir"
      export TESTS="$num" TEST_SCENARIO="$scenario" TEST_KAFKA_VERSION="$kafka_version"
      export RDKAFKA_TEST_CONF="$out/test.conf" KAFKA_PATH="$kafka_path" BROKERS="$bootstrap"
      export STROM_BIN="$strom" LD_LIBRARY_PATH="$rdk_dir/src:$rdk_dir/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      exec timeout -k 30 "$test_timeout" stdbuf -oL -eL ./test-runner "${runner_args[@]}"
    ) >"$log" 2>&1 </dev/null &
    runner_pid=$!
    wait "$runner_pid" || rc=$?
  } 2>/dev/null
  runner_pid=""
  secs=$((($(date +%s%N) - start) / 1000000))
  secs="$((secs / 1000)).$(((secs % 1000) / 100))"

  # Summary rows look like "| 0001_multiobj | PASSED | 1.234s | reason"; keep the last table.
  lines=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
    awk -v n="$num" '/^TEST [0-9]+ .*SUMMARY$/ { rows = "" }
      $0 ~ "^\\| " n "_" { rows = rows $0 "\n" } END { printf "%s", rows }')
  if [ -z "$lines" ]; then
    local why="exit status $rc, no summary"
    ((rc == 124 || rc == 137)) && why="killed after ${test_timeout}s (SUITE_TEST_TIMEOUT)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$num" "$phase" "$num" CRASHED "$secs" "$why" >>"$out/subtests.tsv"
  else
    # A sub-test that timed out has no reason in the table; take it from the failure message.
    local timed_out
    timed_out=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -o 'timed out (timeout set to [0-9]* seconds)' | tail -1 || true)
    awk -F'|' -v n="$num" -v p="$phase" -v tmo="$timed_out" '{
        name = $2; state = $3; dur = $4; reason = $5
        for (i = 6; i <= NF; i++) reason = reason "|" $i
        gsub(/^ +| +$/, "", name); gsub(/^ +| +$/, "", state)
        gsub(/^ +|s? +$/, "", dur); gsub(/^ +| +$/, "", reason); gsub(/\t/, " ", reason)
        if (reason == "" && (state == "FAILED" || state == "RUNNING") && tmo != "") reason = tmo
        printf "%s\t%s\t%s\t%s\t%s\t%s\n", n, p, name, state, dur, reason
      }' <<<"$lines" >>"$out/subtests.tsv"
  fi
  printf '%s\t%s\t%s\n' "$num" "$phase" "$secs" >>"$out/times.tsv"

  if ! nodes_alive; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$num" "$phase" "$num" FAILED 0 \
      "a strom node exited during this test (see $out/$phase/strom-*.log); restarted" >>"$out/subtests.tsv"
    stop_nodes
    start_nodes "$phase" "$auto_create"
  fi
  return 0
}

: >"$out/subtests.tsv"
: >"$out/times.tsv"
echo "librdkafka-suite: librdkafka tree $rdk_dir, strom $strom, output in $out" >&2
mode="single node"
((cluster)) && mode="3-node cluster"
for phase_spec in default:true noautocreate:false; do
  phase=${phase_spec%%:*}
  auto_create=${phase_spec#*:}
  mkdir -p "$out/$phase"
  echo "librdkafka-suite: scenario $phase ($mode, auto-create-topics=$auto_create) on $bootstrap" >&2
  start_nodes "$phase" "$auto_create"
  for t in "${tests[@]}"; do
    run_test "$t" "$phase" "$phase"
    # A progress line per test that ran in this scenario.
    awk -F'\t' -v n="$t" -v p="$phase" '$1 == n && $2 == p && !($4 == "SKIPPED" && $6 == "") {
        printf "  %s %-45s %s %s\n", p, $3, $4, $6 }' "$out/subtests.tsv" | cut -c1-160 >&2
  done
  stop_nodes
  rm -rf "$out/$phase"/data-*
done

# --- Summary --------------------------------------------------------------------------------
# Per test number: FAIL if any sub-test failed, timed out or crashed; PASS if any passed; SKIP
# if all were skipped by the suite (reason shown); n/a if none belongs to the scenarios run.
awk -F'\t' '
  FNR == NR { secs[$1] += $3; next }
  $4 == "SKIPPED" && $6 == "" { next }            # not part of this scenario / not selected
  {
    n = $1
    if ($4 == "PASSED") pass[n]++
    else if ($4 == "SKIPPED") { skip[n]++; if (!(n in skipwhy)) skipwhy[n] = $3 ": " $6 }
    else { fail[n]++; if (!(n in failwhy)) failwhy[n] = $3 " " $4 ": " $6 }
  }
  END {
    for (n in secs) {
      if (fail[n]) { r = "FAIL"; d = failwhy[n] }
      else if (pass[n]) { r = "PASS"; d = skip[n] ? skip[n] " sub-test(s) skipped: " skipwhy[n] : "" }
      else if (skip[n]) { r = "SKIP"; d = skipwhy[n] }
      else { r = "n/a"; d = "no sub-test in the scenarios run" }
      printf "%s\t%s\t%.1f\t%s\n", n, r, secs[n], d
    }
  }' "$out/times.tsv" "$out/subtests.tsv" | sort >"$out/results.tsv"

printf '\n%-6s %-6s %8s  %s\n' TEST RESULT SECONDS DETAIL
awk -F'\t' '{ printf "%-6s %-6s %8s  %s\n", $1, $2, $3, $4 }' "$out/results.tsv" | cut -c1-200
awk -F'\t' '{ c[$2]++ } END {
    printf "\n%d tests: %d pass, %d fail, %d skipped by the suite, %d n/a\n",
      NR, c["PASS"], c["FAIL"], c["SKIP"], c["n/a"] }' "$out/results.tsv"
echo "Logs: $out/<scenario>/<test>.log, Strom: $out/<scenario>/strom-*.log, per sub-test: $out/subtests.tsv"

! grep -q "$(printf '\tFAIL\t')" "$out/results.tsv"
