#!/usr/bin/env bash
# One command for a local demo: installs the build dependencies (as root on
# Debian), builds portvakt and runs `portvakt demo` (dev certificate, demo
# users, built-in whoami upstream). Extra arguments go to `portvakt demo`,
# e.g. --listen 127.0.0.1:9443 or --state DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh build
exec cargo run --release --locked --quiet -- demo "$@"
