#!/usr/bin/env bash
# Time `portvakt audit query` and `portvakt audit report` on a ~1 GB access log
# and a proportionate auth log (generated once, realistic field values, the
# auth log with its hash-chain fields and anchor line).
#
#   bench/audit.sh                       # generate (if missing), build, measure
#   SIZE_MB=200 bench/audit.sh           # a smaller log
#   BIN=target/release/portvakt bench/audit.sh   # skip the build
#   ROUNDS=5 GZ=1 bench/audit.sh         # more rounds; also time a gzipped copy
#
# Prints, per command: wall time, user+sys CPU and MB/s over the input bytes
# (the median of ROUNDS runs, files in the page cache). See bench/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
DATA=${DATA:-/tmp/portvakt-audit-bench}
ROUNDS=${ROUNDS:-3}
GZ=${GZ:-0}
BIN=${BIN:-}

command -v python3 >/dev/null || { echo "bench/audit.sh: needs python3" >&2; exit 1; }

if [[ -z "$BIN" ]]; then
    cargo build --release --quiet
    BIN=target/release/portvakt
fi

ACCESS="$DATA/access.jsonl"
AUTH="$DATA/auth.jsonl"
STAMP="$DATA/.size-$SIZE_MB"
if [[ ! -f "$STAMP" || ! -f "$ACCESS" || ! -f "$AUTH" ]]; then
    mkdir -p "$DATA"
    rm -f "$DATA"/.size-* "$ACCESS" "$AUTH" "$ACCESS.1.gz"
    echo "generating ${SIZE_MB} MB of access log in $DATA ..." >&2
    start=$(date +%s)
    python3 - "$ACCESS" "$AUTH" "$SIZE_MB" <<'PY'
# Seven days (2026-11-16 .. 2026-11-22 UTC) of a municipality's gateway:
# ~3000 staff, ten services, office hours busier than nights, about one
# auth line per ~25 requests. Field order and encoding as serde_json writes
# them (compact, UTF-8 unescaped; auth lines with sorted keys), so the fast
# paths see what production sees.
import hashlib, json, random, sys, time
from datetime import datetime, timezone

access_path, auth_path, size_mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
target = size_mb * 1024 * 1024
rnd = random.Random(20261123)
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# The auth log is canonical JSON (keys sorted) because of its hash chain.
canonical = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode

START = int(datetime(2026, 11, 16, tzinfo=timezone.utc).timestamp() * 1000)
END = START + 7 * 86_400_000
FIRST = ["anna", "erik", "maria", "lars", "karin", "johan", "eva", "per", "lena", "anders",
         "sara", "mikael", "emma", "nils", "ida", "olof", "åsa", "björn", "märta", "örjan"]
LAST = ["andersson", "berg", "carlsson", "dahl", "ek", "forsberg", "holm", "lind", "nyström", "ström"]
USERS = [f"{rnd.choice(FIRST)}.{rnd.choice(LAST)}{i}" for i in range(3000)] + ["alice", "bob"]
REALM = {u: ("ped" if i % 3 == 0 else "adm") for i, u in enumerate(USERS)}
HOME_IP = {u: f"10.20.{rnd.randrange(0, 64)}.{rnd.randrange(1, 255)}" for u in USERS}
AWAY_IP = [f"{a}.{rnd.randrange(0, 256)}.{rnd.randrange(0, 256)}.{rnd.randrange(1, 255)}"
           for a in (81, 83, 85, 90, 94, 155, 178, 193, 213) for _ in range(200)]
ATTACKERS = [f"203.0.113.{i}" for i in range(1, 40)] + [f"198.51.100.{i}" for i in range(1, 20)]
SERVICES = [("Lönebesked", "lon.kommun.se", "10.20.1.5:8443", 6),
            ("Intranät", "intra.kommun.se", "10.20.1.10:80", 30),
            ("Wiki", "wiki.kommun.se", "10.20.1.11:80", 14),
            ("Ärendehantering", "arende.kommun.se", "10.20.1.12:8080", 16),
            ("Skolportalen", "skola.kommun.se", "10.30.1.5:443", 12),
            ("Bokning", "bokning.kommun.se", "10.20.1.14:80", 6),
            ("Ekonomi", "ekonomi.kommun.se", "10.20.1.15:8443", 5),
            ("Personal", "personal.kommun.se", "10.20.1.16:8443", 4),
            ("E-post", "mail.kommun.se", "10.20.1.17:443", 5),
            ("Öppet", "open.kommun.se", "10.20.1.18:80", 2)]
SERVICE_W = [s[3] for s in SERVICES]
PATHS = ["/", "/index.html", "/api/v1/items", "/api/v1/items/4711", "/static/app.js", "/static/site.css",
         "/documents/2026/11/protokoll.pdf", "/search", "/lon/2026-11", "/cases/12345/notes", "/favicon.ico"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
          "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "curl/8.5.0"]
DECISIONS = [("allow", "ok", 880), ("login", "no_session", 40), ("step_up", "second_factor_required", 10),
             ("page", "page", 40), ("redirect", "handoff", 10), ("deny", "missing_group", 5),
             ("deny", "network", 3), ("closed", "outside_opening_hours", 3), ("not_found", "no_service", 5),
             ("error", "upstream", 4)]
DEC_W = [d[2] for d in DECISIONS]
SECOND = ["sms", "email", "totp", "token"]

def ts(ms, cache={}):
    s, m = divmod(ms, 1000)
    p = cache.get(s)
    if p is None:
        cache.clear()
        p = cache[s] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
    return f"{p}.{m:03d}Z"

def busy(ms):
    # Office hours (06-18 UTC on weekdays) carry most of the traffic.
    h = (ms // 3_600_000) % 24
    wd = (ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday
    return (1.0 if 6 <= h < 18 else 0.15) * (1.0 if wd < 5 else 0.25)

est_lines = target // 560
# Lines per ms follow busy(); its mean over a week is about 0.45.
step = (END - START) / est_lines * 0.45
rid = 0
seq = 1
prev = "0" * 64
access = open(access_path, "w", encoding="utf-8", buffering=1 << 20)
auth = open(auth_path, "w", encoding="utf-8", buffering=1 << 20)

def auth_line(ev):
    global seq, prev
    ev["seq"] = seq
    ev["prev"] = prev
    h = hashlib.sha256((prev + ev["time"] + ev["event"]).encode()).hexdigest()
    ev["hash"] = h
    prev = h
    seq += 1
    auth.write(canonical(ev) + "\n")

auth_line({"time": ts(START), "event": "chain_anchor", "result": "info", "reason": "new_file",
           "host": "gw1.kommun.se", "pid": 4242})

written = 0
t = START
while written < target:
    t += max(1, int(rnd.expovariate(1.0) * step / busy(t)))
    rid += 1
    req = f"{0x5eed000000000000 | rid:016x}"
    user = rnd.choice(USERS)
    away = rnd.random() < 0.22
    ip = rnd.choice(AWAY_IP) if away else HOME_IP[user]
    attack = rnd.random() < 0.004
    if attack:
        ip, away = rnd.choice(ATTACKERS), True
    realm = REALM[user]
    network = "external" if away else "internal"
    svc, host, upstream, _ = rnd.choices(SERVICES, SERVICE_W)[0]
    decision, reason, _ = rnd.choices(DECISIONS, DEC_W)[0]
    if attack:
        decision, reason = rnd.choice([("login", "no_session"), ("deny", "network"), ("not_found", "no_service")])
    logged_in = decision in ("allow", "step_up", "deny", "closed") and not attack
    status = {"allow": 200, "login": 302, "step_up": 302, "page": 200, "redirect": 303,
              "deny": 403, "closed": 403, "not_found": 404, "error": 502}[decision]
    if decision == "allow" and rnd.random() < 0.05:
        status = rnd.choice([201, 204, 304, 404, 500])
    proxied = decision in ("allow", "error")
    line = {
        "time": ts(t), "request_id": req, "client_ip": ip, "peer_ip": ip, "network": network,
        "host": "portal.kommun.se" if decision in ("page", "redirect") else host,
        "method": "POST" if rnd.random() < 0.08 else "GET",
        "path": "/.portvakt/login" if decision == "page" else rnd.choice(PATHS),
        "status": status, "bytes": rnd.randrange(0, 60000) if status == 200 else 0,
        "duration_ms": round(rnd.expovariate(1 / 12.0), 3),
        "service": svc if decision not in ("page", "redirect", "not_found") else None,
        "upstream": upstream if proxied else None,
        "upstream_status": (status if decision == "allow" else 502) if proxied else None,
        "user": user if logged_in else None, "realm": realm if logged_in else None,
        "auth_level": (2 if away else 1) if logged_in else None,
        "decision": decision, "reason": reason, "tls_version": "TLSv1.3",
        "http_version": rnd.choice(["HTTP/2", "HTTP/1.1"]), "user_agent": rnd.choice(AGENTS),
        "error": "upstream connect failed" if decision == "error" else None,
    }
    text = dumps(line) + "\n"
    access.write(text)
    written += len(text.encode("utf-8"))
    # Roughly one auth event per 25 requests, from the same person and place.
    if rnd.random() < 0.04:
        who = user if not attack else rnd.choice(USERS + ["admin", "administrator", "test", "root"])
        base = {"time": ts(t), "event": "login", "result": "success", "reason": "ok", "user": who,
                "realm": realm, "client_ip": ip, "network": network, "method": "password",
                "request_id": req, "session": f"{rnd.getrandbits(48):012x}", "host": "portal.kommun.se"}
        r = rnd.random()
        if attack or r < 0.08:
            base.update(result="failure", session=None,
                        reason=rnd.choice(["wrong_password"] * 6 + ["unknown_user"] * 3 + ["locked", "disabled"]))
            auth_line(base)
            if rnd.random() < 0.06:
                auth_line({**base, "event": "lockout", "result": "info", "reason": "too_many_failures", "method": None})
            if attack and rnd.random() < 0.05:
                auth_line({**base, "event": "ip_block", "result": "info", "reason": "too_many_failures",
                           "user": None, "method": None})
        elif r < 0.55:
            auth_line(base)
            if away:
                m = rnd.choice(SECOND)
                if m in ("sms", "email"):
                    auth_line({**base, "event": "code_sent", "result": "success", "reason": "sent", "method": m,
                               "destination": "070*****67" if m == "sms" else "a***e@kommun.se",
                               "provider": "202 Accepted"})
                if rnd.random() < 0.07:
                    auth_line({**base, "event": "second_factor", "result": "failure", "reason": "wrong_code",
                               "method": m})
                auth_line({**base, "reason": "second_factor", "method": m})
        elif r < 0.75:
            auth_line({**base, "event": "logout", "reason": "user", "method": None})
        elif r < 0.97:
            auth_line({**base, "event": "expired", "result": "info", "reason": "idle", "method": None,
                       "request_id": "", "host": None})
        elif r < 0.985:
            ok = rnd.random() < 0.9
            auth_line({**base, "event": "reauth", "result": "success" if ok else "failure",
                       "reason": "ok" if ok else "wrong_password"})
        else:
            auth_line({**base, "event": "enrolment", "reason": rnd.choice(["sms_added", "totp_added"]),
                       "method": None})
access.close()
auth.close()
PY
    touch "$STAMP"
    echo "generated in $(( $(date +%s) - start )) s" >&2
fi

if [[ "$GZ" == 1 && ! -f "$ACCESS.1.gz" ]]; then
    echo "compressing a copy (logrotate's compress) ..." >&2
    gzip -1 -c "$ACCESS" > "$ACCESS.1.gz"
fi

bytes() { stat -c %s "$@" | awk '{s += $1} END {print s}'; }
IN_BYTES=$(bytes "$ACCESS" "$AUTH")
IN_MB=$(awk -v b="$IN_BYTES" 'BEGIN {printf "%.0f", b / 1048576}')
ACCESS_LINES=$(wc -l < "$ACCESS")
AUTH_LINES=$(wc -l < "$AUTH")
cat "$ACCESS" "$AUTH" > /dev/null   # into the page cache: measure the reader, not the disk

echo "portvakt: $BIN ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "input:    $ACCESS ($(bytes "$ACCESS") bytes, $ACCESS_LINES lines)"
echo "          $AUTH ($(bytes "$AUTH") bytes, $AUTH_LINES lines)"
echo "machine:  $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# One measured command: median wall time of ROUNDS runs with its user+sys.
measure() {
    local name=$1 bytes=$2; shift 2
    local runs=() out
    for _ in $(seq "$ROUNDS"); do
        out=$( { TIMEFORMAT='%R %U %S'; time "$@" > /dev/null 2>"$DATA/stderr"; } 2>&1 )
        runs+=("$out")
    done
    printf '%s\n' "${runs[@]}" | sort -n | awk -v n="$name" -v r="$ROUNDS" -v b="$bytes" '
        { w[NR] = $1; c[NR] = $2 + $3 }
        END { m = int((NR + 1) / 2);
              printf "%-46s %7.2f s  %7.2f s  %7.0f MB/s   (median of %d; runs %s", n, w[m], c[m], b / 1048576 / w[m], r, w[1];
              for (i = 2; i <= NR; i++) printf ", %s", w[i]; print " s)" }'
    if [[ -s "$DATA/stderr" ]]; then sed 's/^/    stderr: /' "$DATA/stderr" | head -3; fi
}

printf '%-46s %9s  %9s  %12s\n' "command (on $IN_MB MB: access + auth)" "wall" "user+sys" "throughput"
measure "query --user alice (selective, table)" "$IN_BYTES" \
    "$BIN" audit query "$ACCESS" "$AUTH" --user alice
measure "query --ip 203.0.113.0/24 --since/--until 1d" "$IN_BYTES" \
    "$BIN" audit query "$ACCESS" "$AUTH" --ip 203.0.113.0/24 --since 2026-11-18 --until 2026-11-18
measure "query --service Lönebesked --network external" "$IN_BYTES" \
    "$BIN" audit query "$ACCESS" "$AUTH" --service Lönebesked --network external
measure "query --network internal --json (broad)" "$IN_BYTES" \
    "$BIN" audit query "$ACCESS" "$AUTH" --network internal --json
measure "query --decision allow (broad, table)" "$IN_BYTES" \
    "$BIN" audit query "$ACCESS" "$AUTH" --decision allow
measure "report (whole week)" "$IN_BYTES" \
    "$BIN" audit report "$ACCESS" "$AUTH"
measure "report --since 2026-11-20 (3 of 7 days)" "$IN_BYTES" \
    "$BIN" audit report "$ACCESS" "$AUTH" --since 2026-11-20
if [[ "$GZ" == 1 ]]; then
    GZ_BYTES=$(bytes "$ACCESS")
    measure "report access.jsonl.1.gz (gzip -1; MB/s raw)" "$GZ_BYTES" \
        "$BIN" audit report "$ACCESS.1.gz"
fi
echo
echo "matches: --user alice: $("$BIN" audit query "$ACCESS" "$AUTH" --user alice --json | wc -l) lines;" \
     "--network internal: $("$BIN" audit query "$ACCESS" "$AUTH" --network internal --json | wc -l) lines"
