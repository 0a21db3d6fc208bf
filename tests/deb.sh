#!/usr/bin/env bash
# The Debian package: builds it with cargo-deb from the debug binary the suite
# has already built (`--no-build --profile dev --strip`; an admin's `cargo deb`
# builds the production profile instead, docs/admin-guide.md "From the Debian
# package"), checks it with lintian (any error fails) and dpkg-deb (every path,
# mode, conffile and maintainer script), runs the packaged binary on the
# packaged configuration, and then, as root, really installs, runs the postinst
# again, upgrades, removes and purges it with apt in a throw-away copy-on-write copy
# of this machine (tests/deb-install.sh), so that this machine is never changed.
# tests/run.sh calls this; alone: bash tests/deb.sh. DEB_INSTALL=0 skips the
# install; DEB_INSTALL=1 fails instead of skipping it when it cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
# What this and tests/deb-install.sh use; tests/run.sh has installed them.
for tool in lintian dpkg-parsechangelog file ip adduser; do
  command -v "$tool" >/dev/null || { bash tests/install-deps.sh test; break; }
done
start=$SECONDS

fail() { echo "deb: FAILED: $*" >&2; exit 1; }
say() { echo "deb: $*"; }

# Pinned: the flags below and the generated maintainer-script fragments the
# checks read are this version's. Installing it took 4 min 41 s on 2 busy cores
# (once per machine; it stays in ~/.cargo/bin).
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  cargo install cargo-deb --locked --version "$cargo_deb_version"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The packaged configuration is made from the example; a stale copy would
# ship yesterday's example.
systemd/debian/make-config.sh "$work/fresh.yaml"
diff -u systemd/debian/portvakt.yaml "$work/fresh.yaml" ||
  fail "systemd/debian/portvakt.yaml is older than config/portvakt.example.yaml: run systemd/debian/make-config.sh"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ "$(dpkg-parsechangelog -l systemd/debian/changelog -S Version)" = "$version-1" ] ||
  fail "systemd/debian/changelog's newest entry is not $version-1 (Cargo.toml's version)"

# No-op when tests/run.sh has just built it; from a clean tree, the build.
cargo build --locked --bin portvakt
# The dev profile: cargo-deb warns that it is meant for releases, which is the
# point: the packaging is tested here, not the optimiser. --strip and
# --no-dbgsym: what `cargo deb` puts in the .deb is a stripped binary (its
# symbols go to the -dbgsym package, not built here).
rm -rf target/debian
cargo deb --no-build --profile dev --fast --strip --no-dbgsym \
  2> >(grep -v -e 'dev profile is not supported' -e 'To enable debug symbols' >&2)
deb=target/debian/portvakt_${version}-1_amd64.deb
[ -s "$deb" ] || fail "no $deb"
say "built $deb ($(du -h "$deb" | cut -f1)) after $((SECONDS - start)) s"

echo "== deb: lintian"
# Fails on errors. The overrides, each with its reason, are in
# systemd/debian/lintian-overrides; warnings and notes are printed for the reader.
lintian --fail-on error --display-info "$deb" || fail "lintian reports errors"

echo "== deb: contents"
contents=$(dpkg-deb --contents "$deb" | awk '{ print $1, $2, $6 }')
expect() { # MODE OWNER PATH
  grep -qxF -- "$1 $2 ./$3" <<<"$contents" || fail "no $3 ($1 $2) in the package; it has:"$'\n'"$contents"
}
expect -rwxr-xr-x 0/0 usr/bin/portvakt
expect -rw-r--r-- 0/0 usr/lib/systemd/system/portvakt.service
expect -rw-r--r-- 0/0 etc/logrotate.d/portvakt
expect -rw-r--r-- 0/0 etc/portvakt/portvakt.yaml
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/examples/users.example.yaml
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/examples/ha.example.yaml
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/README.md
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/docs/admin-guide.md
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/docs/bilder/01-valj-grupp.png
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/copyright
expect -rw-r--r-- 0/0 usr/share/doc/portvakt/changelog.Debian.gz
expect -rw-r--r-- 0/0 usr/share/lintian/overrides/portvakt
# Nothing from certs/, no key, and no users file beside the live configuration.
if grep -E '\.(key|pem|p12|pfx)$|certs/|etc/portvakt/users' <<<"$contents"; then
  fail "the package carries a key, a certificate or a users file"
fi
dpkg-deb -x "$deb" "$work/root"
# A PEM block, not the label alone (parsers in the binary name it).
if grep -rlzP -- '-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40,}' "$work/root"; then
  fail "a private key in the package (above)"
fi
cmp "$work/root/etc/portvakt/portvakt.yaml" systemd/debian/portvakt.yaml || fail "packaged config differs"
cmp "$work/root/usr/lib/systemd/system/portvakt.service" systemd/portvakt.service || fail "packaged unit differs"
cmp "$work/root/etc/logrotate.d/portvakt" systemd/portvakt.logrotate || fail "packaged logrotate file differs"
grep -q '^ExecStart=/usr/bin/portvakt serve --config /etc/portvakt/portvakt.yaml$' \
  "$work/root/usr/lib/systemd/system/portvakt.service" || fail "the unit does not start /usr/bin/portvakt"
file "$work/root/usr/bin/portvakt" | grep -q ', stripped$' || fail "usr/bin/portvakt is not stripped"
# Production values only: no development path, no code printed to the journal.
if grep -nE '\.\./certs|^[[:space:]]*[a-z]+: \{ *console: true' "$work/root/etc/portvakt/portvakt.yaml"; then
  fail "the packaged configuration has development settings (above)"
fi

echo "== deb: control"
dpkg-deb -I "$deb"
dpkg-deb -e "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = $'/etc/logrotate.d/portvakt\n/etc/portvakt/portvakt.yaml' ] ||
  fail "conffiles: $(cat "$work/control/conffiles")"
[ "$(dpkg-deb -f "$deb" Package Version Architecture Section | tr '\n' ' ')" = \
  "Package: portvakt Version: $version-1 Architecture: amd64 Section: net " ] ||
  fail "control: $(dpkg-deb -f "$deb" Package Version Architecture Section)"
dpkg-deb -f "$deb" Depends | grep -qw adduser || fail "Depends lacks adduser (the postinst calls it)"
for s in postinst prerm postrm; do
  [ -x "$work/control/$s" ] || fail "no executable $s"
  sh -n "$work/control/$s" || fail "$s is not valid sh"
done
grep -q 'deb-systemd-helper enable portvakt.service' "$work/control/postinst" || fail "postinst does not enable the unit"
# Enabled, never started or restarted by the package (Cargo.toml says why);
# the install below cannot see this, as no systemd runs in its copy.
if grep -nE '^[[:space:]]*(deb-systemd-invoke|systemctl .*(start|restart))' "$work/control/postinst"; then
  fail "postinst starts the gateway (above)"
fi
# Stopped on remove only: an upgrade hands the sockets over instead.
grep -q 'deb-systemd-invoke stop portvakt.service' "$work/control/prerm" || fail "prerm does not stop the unit"
grep -q '"$1" = remove' "$work/control/prerm" || fail "prerm stops the unit on upgrade too"

echo "== deb: the packaged configuration, as shipped"
# Before the admin has made anything: a list of what is missing, not a panic.
set +e
out=$("$work/root/usr/bin/portvakt" check-config --config "$work/root/etc/portvakt/portvakt.yaml" 2>&1)
rc=$?
set -e
echo "$out"
[ "$rc" = 1 ] || fail "check-config exited $rc on the shipped configuration"
for missing in 'tls.certificates\[0\].cert: cannot read /etc/portvakt/tls/gateway.pem' \
  'secret_key_file: cannot read /etc/portvakt/secret.key'; do
  grep -q "$missing" <<<"$out" || fail "check-config did not say: $missing"
done

# --- the real install, in a copy of this machine ------------------------------
skip() {
  [ "${DEB_INSTALL:-}" != 1 ] || fail "cannot install (DEB_INSTALL=1): $*"
  say "real install SKIPPED: $*"
  say "done in $((SECONDS - start)) s"
  exit 0
}
[ "${DEB_INSTALL:-}" != 0 ] || skip "DEB_INSTALL=0"
[ "$(id -u)" = 0 ] || skip "not root"
command -v unshare >/dev/null || skip "no unshare"
# Its own mount and network namespaces: the copy, everything mounted for it
# and the gateway's ports vanish with the process, however it ends.
unshare --mount --net --propagation private true 2>/dev/null || skip "unshare --mount --net is not allowed here"
install_start=$SECONDS
mkdir "$work/sandbox"
unshare --mount --net --propagation private bash tests/deb-install.sh "$deb" "$version" "$work/sandbox"
say "install, postinst again, upgrade, remove, purge: $((SECONDS - install_start)) s"
say "done in $((SECONDS - start)) s"
