#!/usr/bin/env bash
# The one test command (README quick start, CI). Installs what a fresh Debian machine with Rust
# lacks, then runs formatting, lints and every test, unit and integration.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v perl >/dev/null 2>&1 || missing+=(perl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# A build directory outside the clone keeps repeated runs fast; override freely.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strom/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
