#!/usr/bin/env bash
# Fuzzes the backup file reader for SECONDS (default 120) with cargo-fuzz (libFuzzer).
# Installs cargo-fuzz if missing. Builds into target/fuzz, beside the project's other builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-120}"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# libFuzzer's instrumentation flags are nightly-only; the stable toolchain accepts them with
# RUSTC_BOOTSTRAP (no other toolchain can be installed here).
RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz --target-dir target/fuzz \
  read_backup -- -max_total_time="$seconds" -max_len=4096
