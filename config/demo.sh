#!/usr/bin/env bash
# One command for a local demo: installs the build dependencies (as root on
# Debian), builds portvakt and runs `portvakt demo` (dev certificate, demo
# users, built-in whoami upstream). Extra arguments go to `portvakt demo`,
# e.g. --listen 127.0.0.1:9443 or --state DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh build
# The first build compiles pingora, rustls and the rest (~400 crates): it
# looks hung without cargo's progress, so the progress is shown and the wait
# is said up front. Later runs reuse target/ and start in seconds.
target_dir=${CARGO_TARGET_DIR:-target}
if [ ! -x "$target_dir/release/portvakt" ]; then
  echo "portvakt demo: first build of the release binary. On 2 cores this takes 8 to"
  echo "15 minutes (later starts take seconds); cargo's progress follows."
fi
started=$(date +%s)
cargo build --release --locked --bin portvakt
echo "portvakt demo: built in $(( $(date +%s) - started )) s; starting (the URLs come first)."
exec "$target_dir/release/portvakt" demo "$@"
