#!/usr/bin/env bash
# The Debian package installed for real, as an admin would, without touching
# this machine: tests/deb.sh runs this as root in a mount and network namespace
# of its own (`unshare --mount --net`), where it mounts a copy-on-write overlay
# of / (writes go to a tmpfs) and works in it with chroot. apt, dpkg, adduser,
# the maintainer scripts and the gateway are the machine's own and see its
# packages, users and files, but every change they make, and every mount, is
# gone when this script ends, however it ends; a failure cannot leave a
# half-installed package, a user or a unit behind on the machine, and apt's
# lock is the copy's, so nothing waits for or blocks another apt. The gateway
# listens in the private network namespace, so its ports 443, 80 and 9100
# meet nothing else. Usage (tests/deb.sh does it):
#   unshare --mount --net --propagation private bash tests/deb-install.sh DEB VERSION SCRATCH
set -euo pipefail
cd "$(dirname "$0")/.."
deb=$1 version=$2 sb=$3

fail() { echo "deb-install: FAILED: $*" >&2; exit 1; }
say() { echo "deb-install: $*"; }

# Refuse to run where the mounts below would be the machine's.
[ "$(id -u)" = 0 ] || fail "needs root"
[ "$(readlink /proc/self/ns/mnt)" != "$(readlink /proc/1/ns/mnt)" ] ||
  fail "not in a mount namespace of its own: run it through tests/deb.sh"
[ "$(readlink /proc/self/ns/net)" != "$(readlink /proc/1/ns/net)" ] ||
  fail "not in a network namespace of its own: run it through tests/deb.sh"
[ -d "$sb" ] && [ -z "$(ls -A "$sb")" ] || fail "$sb is not an empty directory"

# --- the copy ------------------------------------------------------------------
mount -t tmpfs -o mode=700 portvakt-deb "$sb"
mkdir "$sb/upper" "$sb/ovl" "$sb/root" "$sb/v2"
mount -t overlay portvakt-deb -o "lowerdir=/,upperdir=$sb/upper,workdir=$sb/ovl" "$sb/root"
root=$sb/root
mount -t proc proc "$root/proc" 2>/dev/null || mount --rbind /proc "$root/proc"
# A /dev of its own: the few nodes the tools use, not the machine's disks.
mount -t tmpfs -o mode=755 dev "$root/dev"
while read -r name major minor; do
  mknod -m 666 "$root/dev/$name" c "$major" "$minor"
done <<'NODES'
null 1 3
zero 1 5
full 1 7
random 1 8
urandom 1 9
tty 5 0
NODES
ln -s /proc/self/fd "$root/dev/fd"
# apt logs the terminal output of dpkg through a pseudo-terminal.
mkdir "$root/dev/pts"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
# No systemd runs in the copy (an empty /run), so the scripts' systemctl
# calls are skipped as on a machine without systemd; the unit is only
# enabled (symbolic links) and checked with systemd-analyze.
mount -t tmpfs -o mode=755 run "$root/run"
mount -t tmpfs -o mode=1777 tmp "$root/tmp"
ip link set lo up

in_root() {
  chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}
# apt for the two installs, as the admin guide shows them (it resolves Depends); dpkg,
# which runs the same maintainer scripts, for the rest, as each apt call
# costs some seconds more (it reads all package lists). Nothing can be
# fetched (the network namespace has only loopback): what the package depends
# on must already be here, as it is on the machine it was built on.
# confdef+confold: as unattended upgrades do, keep the admin's edited
# conffiles without asking. The output goes to $sb/apt.log, shown on failure.
apt_get() {
  in_root apt-get -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" > "$sb/apt.log" 2>&1 ||
    fail "apt-get $*:"$'\n'"$(cat "$sb/apt.log")"
}
dpkg_() {
  in_root dpkg --force-confdef --force-confold "$@" > "$sb/apt.log" 2>&1 ||
    fail "dpkg $*:"$'\n'"$(cat "$sb/apt.log")"
}
as_gateway() { in_root runuser -u portvakt -- "$@"; }
status() { in_root dpkg-query -W -f='${db:Status-Status}' portvakt 2>/dev/null || true; }
mode() { in_root stat -c '%U:%G %a' "$1"; }
check_mode() { [ "$(mode "$2")" = "$1" ] || fail "$2 is $(mode "$2"), not $1"; }
# Processes whose root is the copy; none may outlive a step that did not start one.
in_copy() {
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
  done
  true
}
no_process() { [ -z "$(in_copy)" ] || fail "$1: running in the copy: $(in_copy | xargs ps -o pid,user,args -p)"; }
conffile_hashes() { in_root dpkg-query -W -f='${Conffiles}\n' portvakt; }

# The copy is of this machine: a portvakt it has (not expected) goes first,
# so that the install below starts from nothing.
in_root dpkg --purge portvakt >/dev/null 2>&1 || true
in_root userdel portvakt >/dev/null 2>&1 || true
in_root groupdel portvakt >/dev/null 2>&1 || true
rm -rf "$root/etc/portvakt" "$root/var/lib/portvakt" "$root/var/log/portvakt"
mkdir "$sb/before"
for f in passwd group shadow gshadow; do cp -p "$root/etc/$f" "$sb/before/$f"; done
mkdir -m 755 "$root/tmp/pkg"
cp "$deb" "$root/tmp/pkg/"
deb1=/tmp/pkg/$(basename "$deb")

# Version -2: the same files, except that the package changes both conffiles,
# as a later release would.
dpkg-deb -R "$deb" "$sb/v2"
sed -i "s/^Version: .*/Version: $version-2/" "$sb/v2/DEBIAN/control"
echo "# changed by the package in $version-2" >> "$sb/v2/etc/portvakt/portvakt.yaml"
echo "# changed by the package in $version-2" >> "$sb/v2/etc/logrotate.d/portvakt"
dpkg-deb --root-owner-group -Znone -b "$sb/v2" "$root/tmp/pkg/portvakt_${version}-2_amd64.deb" >/dev/null
rm -rf "$sb/v2"
deb2=/tmp/pkg/portvakt_${version}-2_amd64.deb

# --- a fresh install --------------------------------------------------------------
echo "== deb-install: apt install ./$(basename "$deb")"
apt_get install "$deb1"
[ "$(status)" = installed ] || fail "not installed: $(status)"
pw=$(in_root getent passwd portvakt) || fail "no portvakt user"
[[ $pw =~ ^portvakt:x:([0-9]+):([0-9]+):[^:]*:/var/lib/portvakt:/usr/sbin/nologin$ ]] ||
  fail "portvakt user: $pw"
uid=${BASH_REMATCH[1]} gid=${BASH_REMATCH[2]}
[ "$uid" -lt 1000 ] || fail "portvakt is not a system user (uid $uid)"
[ "$(in_root getent group portvakt | cut -d: -f3)" = "$gid" ] || fail "portvakt's primary group is not portvakt"
check_mode "portvakt:portvakt 750" /var/lib/portvakt
check_mode "portvakt:portvakt 750" /var/log/portvakt
check_mode "root:portvakt 750" /etc/portvakt
check_mode "root:root 644" /etc/portvakt/portvakt.yaml
check_mode "root:root 755" /usr/bin/portvakt
for f in /etc/portvakt/portvakt.yaml /etc/logrotate.d/portvakt; do
  conffile_hashes | grep -q "^ $f [0-9a-f]\{32\}$" || fail "dpkg does not hold $f as a conffile: $(conffile_hashes)"
done
# Enabled: the link systemctl enable makes, and deb-systemd-helper's record.
# (deb-systemd-helper links to /lib/systemd/system/, the same directory on a
# merged /usr.)
[ "$(in_root readlink -f /etc/systemd/system/multi-user.target.wants/portvakt.service)" = \
  /usr/lib/systemd/system/portvakt.service ] || fail "the unit is not enabled"
in_root env DPKG_MAINTSCRIPT_PACKAGE=portvakt deb-systemd-helper --quiet was-enabled portvakt.service || fail "deb-systemd-helper: not enabled"
# Not started (tests/deb.sh checks the scripts ask for no start).
no_process "after the install"
# The .deb has no md5sums (cargo-deb makes none); dpkg computes them at
# unpack, so that --verify has something to check.
[ -s "$root/var/lib/dpkg/info/portvakt.md5sums" ] || fail "dpkg holds no md5sums for portvakt"
grep -q ' usr/bin/portvakt$' "$root/var/lib/dpkg/info/portvakt.md5sums" || fail "no md5sum of usr/bin/portvakt"
in_root dpkg --verify portvakt || fail "dpkg --verify: installed files differ from the package"
if in_root sh -c 'command -v systemd-analyze' >/dev/null; then
  # The unit as installed: its binary, its user.
  SYSTEMD_LOG_LEVEL=err in_root systemd-analyze verify /usr/lib/systemd/system/portvakt.service
fi
set +e
out=$(as_gateway portvakt check-config --config /etc/portvakt/portvakt.yaml 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] && grep -q 'cannot read /etc/portvakt/tls/gateway.pem' <<<"$out" ||
  fail "check-config as portvakt before the certificates: exit $rc: $out"

# --- the postinst again, and over an admin's dpkg-statoverride ----------------
echo "== deb-install: postinst again, and over an admin's dpkg-statoverride"
snapshot() {
  in_root sh -c 'cat /etc/passwd /etc/group /etc/shadow /etc/gshadow
    stat -c "%U:%G %a %n" /etc/portvakt /var/lib/portvakt /var/log/portvakt /etc/portvakt/portvakt.yaml
    ls -l /etc/systemd/system/multi-user.target.wants/portvakt.service
    cat /var/lib/systemd/deb-systemd-helper-enabled/portvakt.service.dsh-also'
  conffile_hashes
}
postinst() {
  in_root env DPKG_MAINTSCRIPT_PACKAGE=portvakt DPKG_MAINTSCRIPT_NAME=postinst \
    /var/lib/dpkg/info/portvakt.postinst configure "$version-1"
}
snapshot > "$sb/first"
postinst
postinst
snapshot | diff -u "$sb/first" - || fail "the postinst run again changed the above"
in_root dpkg-statoverride --update --add root adm 2750 /var/log/portvakt
postinst
check_mode "root:adm 2750" /var/log/portvakt
in_root dpkg-statoverride --remove /var/log/portvakt
postinst
check_mode "portvakt:portvakt 750" /var/log/portvakt

# --- the admin's first steps, as docs/admin-guide.md "From the Debian package" gives them
echo "== deb-install: the admin guide's steps, then the gateway serves"
certs/make-dev-cert.sh "$root/tmp/certs" >/dev/null
in_root install -d -m 750 -o root -g portvakt /etc/portvakt/tls
in_root install -m 644 -g portvakt /tmp/certs/dev.pem /etc/portvakt/tls/gateway.pem
in_root install -m 640 -g portvakt /tmp/certs/dev.key /etc/portvakt/tls/gateway.key
in_root install -m 644 -g portvakt /tmp/certs/dev-ca.pem /etc/portvakt/tls/upstream-ca.pem
in_root sh -c 'umask 027 && head -c 32 /dev/urandom > /etc/portvakt/secret.key && chgrp portvakt /etc/portvakt/secret.key'
in_root install -m 640 -g portvakt /usr/share/doc/portvakt/examples/users.example.yaml /etc/portvakt/users.yaml
as_gateway portvakt check-config --config /etc/portvakt/portvakt.yaml
# As the unit runs it: its user, its working directory, only the capability to
# bind 443 and 80 (AmbientCapabilities=CAP_NET_BIND_SERVICE).
# Not through in_root: each command here execs the next, so $! is the gateway.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  setpriv --reuid portvakt --regid portvakt --init-groups \
  --inh-caps +net_bind_service --ambient-caps +net_bind_service \
  sh -c 'cd /var/lib/portvakt && umask 077 && exec portvakt serve --config /etc/portvakt/portvakt.yaml' \
  > "$sb/serve.log" 2>&1 &
serve=$!
stop_serve() { kill "$serve" 2>/dev/null || true; wait "$serve" 2>/dev/null || true; }
trap stop_serve EXIT
ready=
for _ in $(seq 1 100); do
  if curl -fsS -m 2 -o /dev/null http://127.0.0.1:9100/readyz 2>/dev/null; then ready=1; break; fi
  kill -0 "$serve" 2>/dev/null || break
  sleep 0.1
done
[ -n "$ready" ] || fail "the installed gateway is not ready after 10 s:"$'\n'"$(cat "$sb/serve.log")"
# The portal sends a visitor without a session on to its login page.
page=$(curl -sS -m 5 -L --max-redirs 3 --cacert "$root/tmp/certs/dev-ca.pem" \
  --resolve login.example.org:443:127.0.0.1 -w '\n%{http_code} %{url_effective}' https://login.example.org/) ||
  fail "no answer on 443"
[[ "$(tail -n 1 <<<"$page")" == "200 https://login.example.org/"* ]] && grep -q '<form' <<<"$page" ||
  fail "https://login.example.org/ did not lead to a login page: $(tail -n 1 <<<"$page")"
redirect=$(curl -sS -m 5 -o /dev/null -w '%{http_code} %{redirect_url}' --resolve login.example.org:80:127.0.0.1 \
  http://login.example.org/)
[ "$redirect" = "301 https://login.example.org/" ] || [ "$redirect" = "308 https://login.example.org/" ] ||
  fail "port 80 did not redirect to HTTPS: $redirect"
kill -TERM "$serve"
for _ in $(seq 1 150); do kill -0 "$serve" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$serve" 2>/dev/null || fail "the gateway did not stop within 15 s of SIGTERM"
wait "$serve" || fail "the gateway exited $? on SIGTERM:"$'\n'"$(cat "$sb/serve.log")"
trap - EXIT
no_process "after the gateway stopped"
# What it wrote, where the unit lets it and with the owner logrotate expects.
for f in /var/lib/portvakt/portvakt.db /var/log/portvakt/access.jsonl /var/log/portvakt/auth.jsonl; do
  [ -s "$root$f" ] || fail "the gateway wrote no $f"
  [ "$(in_root stat -c %U "$f")" = portvakt ] || fail "$f is not portvakt's"
done
grep -q '"host":"login.example.org"' "$root/var/log/portvakt/access.jsonl" ||
  fail "the request is not in the access log: $(tail -n 2 "$root/var/log/portvakt/access.jsonl")"
in_root portvakt audit verify --config /etc/portvakt/portvakt.yaml >/dev/null || fail "audit verify on the installed logs"

# --- an upgrade over an edited configuration ------------------------------------
echo "== deb-install: apt install ./portvakt_${version}-2_amd64.deb (both conffiles changed by the package)"
echo "# edited by the admin" >> "$root/etc/portvakt/portvakt.yaml"
cp "$root/etc/portvakt/portvakt.yaml" "$sb/edited.yaml"
apt_get install "$deb2"
[ "$(in_root dpkg-query -W -f='${Version}' portvakt)" = "$version-2" ] || fail "not upgraded"
cmp "$root/etc/portvakt/portvakt.yaml" "$sb/edited.yaml" || fail "the upgrade changed the admin's portvakt.yaml"
tail -n 1 "$root/etc/portvakt/portvakt.yaml.dpkg-dist" | grep -qx "# changed by the package in $version-2" ||
  fail "the package's new portvakt.yaml is not beside it as portvakt.yaml.dpkg-dist"
# The unedited conffile follows the package.
tail -n 1 "$root/etc/logrotate.d/portvakt" | grep -qx "# changed by the package in $version-2" ||
  fail "the upgrade kept the old, unedited /etc/logrotate.d/portvakt"
[ "$(in_root id -u portvakt)" = "$uid" ] || fail "the upgrade changed portvakt's uid"
[ -s "$root/var/lib/portvakt/portvakt.db" ] || fail "the upgrade lost the state"
[ -s "$root/etc/portvakt/secret.key" ] || fail "the upgrade lost the secret key"
check_mode "root:portvakt 750" /etc/portvakt
check_mode "portvakt:portvakt 750" /var/lib/portvakt
no_process "after the upgrade"

# --- remove, then purge -----------------------------------------------------------
echo "== deb-install: dpkg --remove"
dpkg_ --remove portvakt
[ ! -e "$root/usr/bin/portvakt" ] || fail "remove left the binary"
[ "$(status)" = config-files ] || fail "remove left portvakt $(status), not config-files"
for f in /etc/portvakt/portvakt.yaml /var/lib/portvakt/portvakt.db /var/log/portvakt/auth.jsonl; do
  [ -e "$root$f" ] || fail "remove deleted $f"
done
in_root getent passwd portvakt >/dev/null || fail "remove deleted the user"

echo "== deb-install: dpkg --purge (the admin's keys still in /etc/portvakt)"
dpkg_ --purge portvakt
case "$(status)" in "" | not-installed) ;; *) fail "purge left portvakt $(status)" ;; esac
for f in /var/lib/portvakt /var/log/portvakt /etc/portvakt/portvakt.yaml /etc/portvakt/portvakt.yaml.dpkg-dist \
  /etc/logrotate.d/portvakt /etc/systemd/system/multi-user.target.wants/portvakt.service \
  /etc/systemd/system/portvakt.service /var/lib/systemd/deb-systemd-helper-enabled/portvakt.service.dsh-also; do
  [ ! -e "$root$f" ] && [ ! -L "$root$f" ] || fail "purge left $f"
done
# Not the package's: what the admin made stays, and with it the user and group
# that may read it (systemd/debian/postrm says why).
for f in /etc/portvakt/secret.key /etc/portvakt/tls/gateway.key /etc/portvakt/users.yaml; do
  [ -s "$root$f" ] || fail "purge deleted the admin's $f"
done
in_root getent passwd portvakt >/dev/null || fail "purge deleted the user while /etc/portvakt has files for it"
grep -q 'kept the portvakt user and group' "$sb/apt.log" || fail "purge did not say why it kept the user"

# As after the admin guide's "By hand" with a useradd that made no group of its own, or
# after an admin deleted the user alone: the group is there, the user is not.
echo "== deb-install: install where only the group exists, clear /etc/portvakt, purge"
rm -rf "$root/etc/portvakt"
in_root userdel portvakt
in_root getent group portvakt >/dev/null || in_root groupadd --system portvakt
group_gid=$(in_root getent group portvakt | cut -d: -f3)
dpkg_ --install "$deb2"
[ "$(in_root id -g portvakt)" = "$group_gid" ] || fail "the new user is not in the existing portvakt group"
check_mode "portvakt:portvakt 750" /var/lib/portvakt
check_mode "root:portvakt 750" /etc/portvakt
dpkg_ --purge portvakt
! in_root getent passwd portvakt >/dev/null || fail "purge kept the user with nothing left for it"
! in_root getent group portvakt >/dev/null || fail "purge kept the group with nothing left for it"
for f in passwd group shadow gshadow; do
  cmp "$sb/before/$f" "$root/etc/$f" || fail "/etc/$f differs from before the install"
done
# Nothing named portvakt anywhere the package or its scripts wrote (the
# overlay's upper layer holds every file changed in the copy; whiteouts, the
# character devices, mark files deleted from the machine's view).
left=$(cd "$sb/upper" && find . -name '*portvakt*' ! -type c ! -path './tmp/*')
[ -z "$left" ] || fail "after the purge, still there: $left"
in_root dpkg-query -W portvakt >/dev/null 2>&1 && [ "$(status)" != not-installed ] &&
  fail "dpkg still lists portvakt: $(status)"
no_process "at the end"
say "install, postinst again, upgrade, remove and purge: all as expected"
