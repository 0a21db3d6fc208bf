#!/usr/bin/env bash
# Installs the Debian packages portvakt needs to build (and, with "test", to run
# its test suite). Run as root on Debian; otherwise it only says what is missing.
# Usage: tests/install-deps.sh [build|test]
set -euo pipefail
what=${1:-test}
pkgs="cmake pkg-config build-essential"          # cmake: pingora's zlib-ng (libz-ng-sys)
if [ "$what" = test ]; then
  pkgs="$pkgs openssl curl systemd"              # openssl: dev certificates; systemd: systemd-analyze verify
  pkgs="$pkgs oathtool python3-aiosmtpd"         # an independent TOTP implementation; a real SMTP server for the tests
  pkgs="$pkgs chromium chromium-driver"          # the real-browser journeys (tests/it/browser.rs)
  pkgs="$pkgs slapd ldap-utils"                  # a real LDAP server for the directory tests
  pkgs="$pkgs nginx"                             # a real upstream that resolves paths as production servers do (tests/it/attack/paths.rs)
  pkgs="$pkgs redis-server redis-tools"          # shared state for two gateways (tests/it/cluster.rs, src/state/contract.rs)
  pkgs="$pkgs postgresql"                        # the durable store shared by two gateways (src/storage/postgres/tests.rs, tests/it/cluster.rs)
  pkgs="$pkgs python3-jwt python3-cryptography"  # an independent JWT verifier for the identity assertions (tests/it/assertion.rs)
  pkgs="$pkgs logrotate"                         # rotates the logs in tests/it/audit_chain.rs with systemd/portvakt.logrotate
  pkgs="$pkgs lintian dpkg-dev file"             # checks the Debian package tests/deb.sh builds (dpkg-parsechangelog; file: stripped?)
  pkgs="$pkgs adduser iproute2"                  # tests/deb-install.sh: the package's Depends (nothing is fetched there); lo up
  # npm installs the pinned axe-core for the accessibility tests (tests/it/a11y/);
  # any Node.js that brings npm will do (Debian's, or NodeSource's single package).
  command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
fi
missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done | tr '\n' ' ')
if [ -n "${missing// /}" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "portvakt: please install these Debian packages first: $missing" >&2
    exit 1
  fi
  echo "portvakt: installing $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ "$what" = test ]; then
  # Exactly the axe-core version and integrity of tests/a11y/package-lock.json,
  # no install scripts (the accessibility tests also do this when it is missing).
  (cd "$(dirname "$0")/a11y" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
