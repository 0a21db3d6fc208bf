#!/usr/bin/env bash
# Build every fuzz target and run each for FUZZ_SECONDS (default 20) from
# its seeds (fuzz/seeds/TARGET) and what earlier runs found (fuzz/corpus/,
# not in git). tests/run.sh calls this; docs/security.md "Fuzzing" says how to run
# longer. libFuzzer needs unstable rustc flags: RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept them. No sanitizer by default: the targets are safe
# Rust, and what they look for is panics, broken properties and unbounded
# memory (-rss_limit_mb); FUZZ_SANITIZER=address adds ASan. FUZZ_PROFILE=dev
# builds unoptimised (about half the cold build time, a tenth of the speed):
# what tests/run.sh uses for its short runs; the default is release.
set -euo pipefail
cd "$(dirname "$0")"
secs=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-none}
case "${FUZZ_PROFILE:-release}" in
  release) profile=--release ;;
  dev) profile=--dev ;;
  *) echo "fuzz: FUZZ_PROFILE is release or dev" >&2; exit 2 ;;
esac
if ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s "$sanitizer" $profile
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target" "seeds/$target"
  echo "fuzz: $target for ${secs}s"
  log="corpus/$target.log"
  if ! cargo fuzz run -s "$sanitizer" $profile "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=1024 -max_len=8192 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (the input is in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | tr '\n' ' '
  echo
done
