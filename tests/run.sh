#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# dependencies, formatting, lints, unit and integration tests (real gateway,
# real upstreams, real TLS clients), every shipped config, the systemd unit,
# the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh test

echo "== format and lints"
cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

echo "== build"
cargo build --locked

echo "== shipped configuration files"
certs/make-dev-cert.sh
for f in config/*.yaml; do
  case "$(basename "$f")" in users*) continue ;; esac
  target/debug/portvakt check-config --config "$f"
done

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
  unit_dir=$(mktemp -d)
  # Verify the unit as shipped, with ExecStart pointing at the binary just built.
  sed "s#/usr/bin/portvakt#$PWD/target/debug/portvakt#g" systemd/portvakt.service > "$unit_dir/portvakt.service"
  SYSTEMD_LOG_LEVEL=err systemd-analyze verify "$unit_dir/portvakt.service"
  rm -rf "$unit_dir"
  echo "systemd/portvakt.service: verified"
fi

echo "== Debian package"
# Packages the binary just built and checks it; as root also installs,
# upgrades and purges it in a throw-away copy of this machine.
bash tests/deb.sh

echo "== tests"
cargo test --locked -- --test-threads 2

echo "== fuzzing: every target briefly (docs/security.md 'Fuzzing' runs them longer)"
# Unoptimised: the cold build is what costs here, not the 15 s of each run.
FUZZ_PROFILE=${FUZZ_PROFILE:-dev} FUZZ_SECONDS=${FUZZ_SECONDS:-15} bash fuzz/run.sh
