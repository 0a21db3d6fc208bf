#!/usr/bin/env bash
# Writes the configuration the Debian package installs as
# /etc/portvakt/portvakt.yaml: config/portvakt.example.yaml with the production
# values its comments name, codes no longer printed to the journal, logs in
# /var/log/portvakt. The example stays the one source: edit it, run this, and
# commit both; tests/deb.sh fails when they disagree.
# Usage: systemd/debian/make-config.sh [OUT]   (default: systemd/debian/portvakt.yaml)
#
# Below, a "-" line is a whole line of the example, which must occur exactly
# once; the "+" lines after it replace it (none: the line goes). A line the
# example no longer has stops this script, so a change to the example cannot
# slip into the package with a development value.
set -euo pipefail
cd "$(dirname "$0")/../.."
example=config/portvakt.example.yaml
out=${1:-systemd/debian/portvakt.yaml}
edits=$(cat <<'EDITS'
-# Relative paths are relative to this file's directory. The values below point at
-# the development files made by certs/make-dev-cert.sh so this file validates as
-# it is; in production use the paths in the comments.
+# Relative paths are relative to this file's directory.
+#
+# Installed by the portvakt Debian package as /etc/portvakt/portvakt.yaml, a
+# conffile: upgrades keep your edits (dpkg asks when both sides changed). The
+# paths are the production ones and the files they name are yours to make
+# before `systemctl start portvakt`: the certificate chain and key in
+# /etc/portvakt/tls/, secret.key and users.yaml (examples in
+# /usr/share/doc/portvakt/examples/). Then set the host names, networks and
+# services below to your own. The steps: "From the Debian package" in
+# /usr/share/doc/portvakt/docs/admin-guide.md; `portvakt check-config --config
+# /etc/portvakt/portvakt.yaml` names whatever is still missing.
-  https: "127.0.0.1:8443"          # production: "0.0.0.0:443"
+  https: "0.0.0.0:443"             # development: "127.0.0.1:8443"
-  http: "127.0.0.1:8080"           # optional plain-HTTP listener; it only redirects to HTTPS
+  http: "0.0.0.0:80"               # optional plain-HTTP listener; it only redirects to HTTPS
-    - cert: ../certs/dev.pem       # production: /etc/portvakt/tls/gateway.pem (chain, leaf first)
+    - cert: /etc/portvakt/tls/gateway.pem   # chain, leaf first; readable by the portvakt group
-      key: ../certs/dev.key        # production: /etc/portvakt/tls/gateway.key
+      key: /etc/portvakt/tls/gateway.key    # mode 640, group portvakt
-secret_key_file: ../certs/dev-secret.key   # production: /etc/portvakt/secret.key (32+ random bytes, mode 600)
+secret_key_file: /etc/portvakt/secret.key   # 32+ random bytes; mode 640, group portvakt
-    directory: { file: users.example.yaml }            # or ldap: (below) — see docs/admin-guide.md
+    directory: { file: users.yaml }                    # or ldap: (below) — see docs/admin-guide.md
-      ca_file: ../certs/dev-ca.pem   # trust this CA bundle for this upstream instead of the system's
+      ca_file: /etc/portvakt/tls/upstream-ca.pem   # trust this CA bundle for this upstream instead of the system's
-storage: portvakt.db               # production: /var/lib/portvakt/portvakt.db (SMS numbers, devices, tokens)
+storage: /var/lib/portvakt/portvakt.db   # SMS numbers, devices, tokens
-  sms: { console: true }           # development: print codes; remove in production
+  # sms: { console: true }         # development only: it prints every code to the journal
-  email: { console: true }
+  # email: { console: true }
-  access_log: stdout               # or a file, e.g. /var/log/portvakt/access.jsonl
+  access_log: /var/log/portvakt/access.jsonl   # or stdout (the journal); rotated by /etc/logrotate.d/portvakt
-  auth_log: stdout                 # or a file, e.g. /var/log/portvakt/auth.jsonl (hash-chained either way)
+  auth_log: /var/log/portvakt/auth.jsonl       # or stdout (hash-chained either way)
EDITS
)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if ! awk -v edits="$edits" '
  BEGIN {
    n = split(edits, lines, "\n")
    for (i = 1; i <= n; i++) {
      tag = substr(lines[i], 1, 1); text = substr(lines[i], 2)
      if (tag == "-") { old[++olds] = text; repl[text] = ""; has[text] = 0; cur = text }
      else if (tag == "+") { repl[cur] = repl[cur] text "\n" }
    }
  }
  ($0 in repl) { has[$0]++; printf "%s", repl[$0]; next }
  { print }
  END {
    bad = 0
    for (i = 1; i <= olds; i++) if (has[old[i]] != 1) {
      printf "make-config: %s has this line %d times, not once:\n  %s\n", FILENAME, has[old[i]], old[i] > "/dev/stderr"
      bad = 1
    }
    exit bad
  }' "$example" > "$tmp"; then
  echo "make-config: change the edits in $0 to match $example" >&2
  exit 1
fi
cat "$tmp" > "$out"
