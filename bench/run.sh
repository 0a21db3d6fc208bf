#!/usr/bin/env bash
# bench/run.sh — portvakt against its own bypass path and the nginx peers, in one run.
#
# Targets (all on the same upstream: the peers' "direct" nginx on 127.0.0.1:18080):
#   portvakt-auth    portvakt, policy one_factor, a logged-in session cookie
#   portvakt-bypass  the same gateway process, policy bypass (pingora's own ceiling)
#   portvakt-assert  the same gateway process, policy one_factor with `assertion: true`: a
#                    signed identity token (ES256 JWT) on every request, reused per session
#                    for 45 s of its 60 s. Compare its CPU/request with portvakt-auth's. Not in
#                    the default TARGETS: TARGETS="portvakt-auth portvakt-assert".
#                    ASSERT_LIFETIME (default 60s) sets assertion.lifetime; its minimum, 10s,
#                    signs four times as often.
#   nginx-tls        ../shared/bench/peers: nginx TLS proxy, no auth
#   nginx-authreq    ../shared/bench/peers: nginx TLS + auth_request subrequest
#   portvakt-redis   a second portvakt process like portvakt-auth but with `state: redis://`
#                    (a redis-server on 127.0.0.1:PORT+3 started here): the cost of shared
#                    state. Its CPU figure counts portvakt AND redis-server. Not in the
#                    default TARGETS; add it: TARGETS="portvakt-auth portvakt-redis".
#   pingora-bare     bench/bare_proxy.rs: pingora + rustls + a HashMap cookie check, nothing
#                    else (the floor under portvakt; built as the example "bare-proxy")
# Each is loaded with a fixed number of requests by h2load over HTTP/1.1 keep-alive
# (--h1 -c 64) and over h2 (-c 32 -m 10), after a short warm-up. Reported per target and
# protocol: requests/s, p50/p99 latency (from h2load's per-request --log-file), and the
# proxy's CPU time per request (utime+stime of the proxy process(es) from /proc, all
# threads, divided by the request count) — steadier than req/s on a shared 2-core VM, and
# its context switches per request.
# portvakt runs with its access log ON (a JSON line per request to a file), as deployed.
#
#   bench/run.sh                          # N=100000 requests per target and protocol
#   N=20000 bench/run.sh                  # quick run
#   ROUNDS=3 bench/run.sh                 # interleaved rounds; medians (recommended)
#   BIN=/path/to/portvakt bench/run.sh    # skip the build, use this binary
#   TARGETS="portvakt-auth portvakt-bypass" PROTOS=h1 bench/run.sh
# Before each measured run it waits (at most QUIET_WAIT=30 s) for the machine to be idle
# (< QUIET_PCT=15 % busy) and records the CPU that anything else used meanwhile ("other
# load"): on a shared machine that is what makes CPU/request figures drift.
# Other knobs: REV (label for the JSON when BIN comes from another tree), THREADS
# (server.threads, 2), PORT (18446), WARM (warm-up requests),
# C1 (h1 connections, 64), C2/M2 (h2 connections/streams, 32/10), OUT (JSON file),
# EXTRA_CONFIG (YAML lines appended to the generated portvakt config), KEEP=1 (keep
# the temp dir with raw h2load output and logs), PERF=1 (perf record -g the portvakt or bare
# process during its measured runs and write perf-TARGET-PROTO.txt reports beside the
# JSON; perf's sampling adds to the CPU figures, so do not compare those with others).
#
# As root it installs what it needs (nghttp2-client, nginx, curl, openssl, python3,
# cmake for the build; the peers' setup.sh does its part). It stops everything it
# started on exit. Results: a table on stdout, JSON in bench/results/ (or $OUT).
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
PD=$(cd "${PEERS_DIR:-$REPO/../shared/bench/peers}" && pwd)   # the peers' scripts
. "$PD/lib.sh"                               # peer_url, running_pid, wait_http, $W=/tmp/peers
PW=$W                                           # the peers' state dir (certs, secrets, pids)

N=${N:-100000} ROUNDS=${ROUNDS:-1} THREADS=${THREADS:-2} PORT=${PORT:-18446}
C1=${C1:-64} C2=${C2:-32} M2=${M2:-10} TMO=${TMO:-300}
WARM=${WARM:-$(( N / 10 < 5000 ? N / 10 : 5000 ))}
TARGETS=${TARGETS:-"portvakt-auth portvakt-bypass pingora-bare nginx-tls nginx-authreq"}
PROTOS=${PROTOS:-"h1 h2"}
mkdir -p "$BENCH/results"
OUT=${OUT:-$BENCH/results/bench-$(date -u +%Y%m%dT%H%M%SZ).json}
UPSTREAM=127.0.0.1:18080
log() { echo "[bench] $*" >&2; }

# ---- dependencies --------------------------------------------------------------------
need="nghttp2-client nginx curl openssl python3"
[ -z "${PERF:-}" ] || need+=" linux-perf"
[ -n "${BIN:-}" ] || need+=" cmake"
missing=$(for p in $need; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || { echo "missing packages: $missing (run as root to install)" >&2; exit 1; }
  if [ ! -e /usr/sbin/policy-rc.d ]; then       # keep the packages' system services down
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    rm_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  [ -z "${rm_policy:-}" ] || rm -f /usr/sbin/policy-rc.d
fi
"$PD/setup.sh" >/dev/null                    # cert, secrets (idempotent)

# ---- the binary ----------------------------------------------------------------------
BIN_GIVEN=${BIN:-}
if [ -z "${BIN:-}" ]; then
  # The profile we tell people to deploy (Cargo.toml: release + fat LTO).
  PROFILE=${PROFILE:-production}
  log "building $PROFILE (cargo build --profile $PROFILE; ~8 minutes on a cold cache) ..."
  (cd "$REPO" && nice -n 10 cargo build --profile "$PROFILE" --quiet --bin portvakt --example bare-proxy)
  BIN=${CARGO_TARGET_DIR:-$REPO/target}/$PROFILE/portvakt
fi
[ -x "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
# The bare pingora proxy from the same build (BARE_BIN= to give another).
BARE_BIN=${BARE_BIN:-$(dirname "$BIN")/examples/bare-proxy}
if [[ " $TARGETS " == *" pingora-bare "* ]] && [ ! -x "$BARE_BIN" ]; then
  log "no bare proxy at $BARE_BIN (cargo build --profile PROFILE --example bare-proxy); skipping pingora-bare"
  TARGETS=$(sed 's/\bpingora-bare\b//' <<<"$TARGETS")
fi

# ---- clean-up of everything we start -------------------------------------------------
T=$(mktemp -d /tmp/portvakt-bench.XXXXXX)
R=$T/raw; mkdir -p "$R"
pv_pid="" bare_pid="" started_peers="" pvr_pid="" redis_pid=""
cleanup() {
  set +e
  [ -z "$pvr_pid" ] || kill -KILL "$pvr_pid" 2>/dev/null
  [ -z "$redis_pid" ] || kill -KILL "$redis_pid" 2>/dev/null
  [ -z "$bare_pid" ] || { kill -TERM "$bare_pid" 2>/dev/null; sleep 1.5; kill -KILL "$bare_pid" 2>/dev/null; }
  if [ -n "$pv_pid" ] && kill -0 "$pv_pid" 2>/dev/null; then
    kill -TERM "$pv_pid"
    for _ in $(seq 50); do kill -0 "$pv_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pv_pid" 2>/dev/null && kill -KILL "$pv_pid"
  fi
  for p in $started_peers; do "$PD/stop.sh" "$p" >/dev/null; done
  if [ -n "${KEEP:-}" ]; then log "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start_peer() {  # start a peer (and the upstream) unless running; remember what we started
  local p
  for p in direct "$1"; do
    running_pid "$p" >/dev/null || { "$PD/start.sh" "$p" >/dev/null; started_peers="$p $started_peers"; }
  done
}
stop_peer() {   # stop a peer only if we started it
  case " $started_peers " in
    *" $1 "*) "$PD/stop.sh" "$1" >/dev/null; started_peers=$(sed "s/\b$1\b//" <<<"$started_peers") ;;
  esac
}

# ---- portvakt: config, user, start, login --------------------------------------------
start_peer direct
pass=$(openssl rand -hex 12)
hash=$(printf '%s' "$pass" | "$BIN" hash-password)
head -c 32 /dev/urandom >"$T/secret.key"; chmod 600 "$T/secret.key"
cat >"$T/users.yaml" <<EOF
users:
  bench:
    password: "$hash"
    display_name: Bench User
    email: bench@example.org
    groups: [staff]
EOF
cat >"$T/portvakt.yaml" <<EOF
# generated by bench/run.sh
listen: { https: "127.0.0.1:$PORT" }
tls:
  certificates:
    - { cert: $PW/tls/cert.pem, key: $PW/tls/key.pem }
portal: { host: portal.localhost }
secret_key_file: $T/secret.key
sessions: { idle_timeout: 8h, max_lifetime: 10h }
server: { threads: $THREADS, grace_period: 1s, graceful_shutdown_timeout: 1s }
realms:
  - id: staff
    internal_networks: [127.0.0.1/32]
    directory: { file: $T/users.yaml }
services:
  - name: app
    host: app.localhost
    upstream: http://$UPSTREAM
    policy: one_factor
  - name: open
    host: open.localhost
    upstream: http://$UPSTREAM
    policy: bypass
  - name: signed
    host: signed.localhost
    upstream: http://$UPSTREAM
    policy: one_factor
    assertion: true
assertion: { lifetime: ${ASSERT_LIFETIME:-60s} }
audit: { access_log: $T/logs/access.jsonl, auth_log: $T/logs/auth.jsonl }
${EXTRA_CONFIG:-}
EOF
"$BIN" check-config --config "$T/portvakt.yaml" >/dev/null
"$BIN" serve --config "$T/portvakt.yaml" >"$T/portvakt.out" 2>&1 &
pv_pid=$!
for _ in $(seq 100); do
  curl -sk -o /dev/null --max-time 1 --resolve "open.localhost:$PORT:127.0.0.1" "https://open.localhost:$PORT/" && break
  kill -0 "$pv_pid" 2>/dev/null || { cat "$T/portvakt.out" >&2; echo "portvakt exited" >&2; exit 1; }
  sleep 0.1
done
PV_COOKIE=$("$BENCH/login.sh" app.localhost "$PORT" bench "$pass")
PVA_COOKIE=""
if [[ " $TARGETS " == *" portvakt-assert "* ]]; then
  PVA_COOKIE=$("$BENCH/login.sh" signed.localhost "$PORT" bench "$pass")
fi
NGX_COOKIE=$("$PD/cookie.sh" nginx-authreq)
BARE_PORT=$((PORT + 1)) BARE_COOKIE="bench_session=$(openssl rand -hex 16)"
if [[ " $TARGETS " == *" pingora-bare "* ]]; then
  "$BARE_BIN" "127.0.0.1:$BARE_PORT" "$PW/tls/cert.pem" "$PW/tls/key.pem" "$UPSTREAM" "$BARE_COOKIE" "$THREADS" \
    >"$T/bare.out" 2>&1 &
  bare_pid=$!
  for _ in $(seq 100); do
    [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "https://localhost:$BARE_PORT/" || true)" = 401 ] && break
    kill -0 "$bare_pid" 2>/dev/null || { cat "$T/bare.out" >&2; echo "bare-proxy exited" >&2; exit 1; }
    sleep 0.1
  done
fi
log "portvakt pid $pv_pid ($BIN), logged in; access log $T/logs/access.jsonl"
REDIS_PORT=$((PORT + 3)) PVR_PORT=$((PORT + 2))
if [[ " $TARGETS " == *" portvakt-redis "* ]]; then
  command -v redis-server >/dev/null || { echo "portvakt-redis needs redis-server (apt-get install redis-server)" >&2; exit 1; }
  mkdir -p "$T/redis" "$T/logs-redis" "$T/r"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$T/redis" >"$T/redis.out" 2>&1 &
  redis_pid=$!
  # Its own directory: its own enrolment store and chain head (a second gateway).
  sed -e "s#127.0.0.1:$PORT#127.0.0.1:$PVR_PORT#" -e "s#$T/logs/#$T/logs-redis/#g" \
      -e "s#^audit: { #audit: { gateway: bench-redis, #" "$T/portvakt.yaml" >"$T/r/portvakt.yaml"
  printf 'state: "redis://127.0.0.1:%s/0"\n' "$REDIS_PORT" >>"$T/r/portvakt.yaml"
  "$BIN" check-config --config "$T/r/portvakt.yaml" >/dev/null
  "$BIN" serve --config "$T/r/portvakt.yaml" >"$T/portvakt-redis.out" 2>&1 &
  pvr_pid=$!
  for _ in $(seq 100); do
    curl -sk -o /dev/null --max-time 1 --resolve "open.localhost:$PVR_PORT:127.0.0.1" "https://open.localhost:$PVR_PORT/" && break
    kill -0 "$pvr_pid" 2>/dev/null || { cat "$T/portvakt-redis.out" >&2; echo "portvakt (redis) exited" >&2; exit 1; }
    sleep 0.1
  done
  PVR_COOKIE=$("$BENCH/login.sh" app.localhost "$PVR_PORT" bench "$pass")
  log "portvakt (state: redis) pid $pvr_pid on $PVR_PORT, redis-server pid $redis_pid on $REDIS_PORT"
fi

# ---- per target: URL, cookie, whether it needs auth, its processes --------------------
url_of() {
  case $1 in
    portvakt-auth)   echo "https://app.localhost:$PORT/" ;;
    portvakt-redis)  echo "https://app.localhost:$PVR_PORT/" ;;
    portvakt-bypass) echo "https://open.localhost:$PORT/" ;;
    portvakt-assert) echo "https://signed.localhost:$PORT/" ;;
    nginx-tls)       echo "https://localhost:18443/" ;;
    nginx-authreq)   echo "https://localhost:18444/" ;;
    pingora-bare)    echo "https://localhost:$BARE_PORT/" ;;
  esac
}
cookie_of() {
  case $1 in portvakt-redis) echo "$PVR_COOKIE" ;; portvakt-assert) echo "$PVA_COOKIE" ;; portvakt-*) echo "$PV_COOKIE" ;; pingora-bare) echo "$BARE_COOKIE" ;; *) echo "$NGX_COOKIE" ;; esac
}
pids_of() {     # the proxy's processes: portvakt, or an nginx master and its workers
  case $1 in
    portvakt-redis) echo "$pvr_pid $redis_pid" ;;
    portvakt-*) echo "$pv_pid" ;;
    pingora-bare) echo "$bare_pid" ;;
    *) local m; m=$(running_pid "$1"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')" ;;
  esac
}
upstream_pids() { local m; m=$(running_pid direct); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }
hostport() { sed -E 's#^https://([^/]+)/.*#\1#' <<<"$1"; }

ticks() {       # utime+stime in clock ticks of processes (each figure covers all its threads)
  local t=0 p f
  for p in "$@"; do
    f=($(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null)) || continue
    t=$((t + f[11] + f[12]))
  done
  echo $t
}

ctxsw() {       # context switches (voluntary + involuntary) of processes, all their threads
  cat $(for p in "$@"; do echo /proc/$p/task/*/status; done) 2>/dev/null |
    awk '/ctxt_switches/ {s += $2} END {print s + 0}'
}

sanity() {      # TARGET: with the cookie 200 "ok"; without it refused (auth targets)
  local t=$1 url hp ok anon
  url=$(url_of "$t"); hp=$(hostport "$url")
  local rs=(--resolve "${hp%:*}:${hp##*:}:127.0.0.1")
  ok=$(curl -sk --max-time 5 "${rs[@]}" -H "Cookie: $(cookie_of "$t")" -w ' %{http_code}' "$url" | tr -d '\n' || true)
  anon=$(curl -sk --max-time 5 "${rs[@]}" -o /dev/null -w '%{http_code}' "$url" || true)
  [ "$ok" = "ok 200" ] || { echo "$t: authenticated request failed: '$ok'" >&2; exit 1; }
  case $t in
    portvakt-auth|portvakt-redis|portvakt-assert) [ "$anon" = 302 ] || { echo "$t: anonymous request not sent to login ($anon)" >&2; exit 1; } ;;
    nginx-authreq|pingora-bare) [ "$anon" = 401 ] || { echo "$t: anonymous request not refused ($anon)" >&2; exit 1; } ;;
  esac
}

load() {        # PROTO URL COOKIE N [h2load args...]; prints the load generator's CPU ticks on fd 3
  local proto=$1 url=$2 cookie=$3 n=$4; shift 4
  local a=(-n "$n" -H "cookie: $cookie" --connect-to "127.0.0.1:$(hostport "$url" | sed 's/.*://')")
  if [ "$proto" = h1 ]; then a+=(--h1 -c "$C1"); else a+=(-c "$C2" -m "$M2"); fi
  ( rc=0; timeout "$TMO" h2load "${a[@]}" "$@" "$url" || rc=$?
    f=($(sed 's/.*) //' /proc/$BASHPID/stat)); echo $((f[13] + f[14])) >&3   # cutime+cstime
    exit $rc )
}

busy() {        # machine-wide busy CPU ticks (all CPUs): user nice system irq softirq steal
  awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat
}

quiet() {       # wait (bounded: QUIET_WAIT s) until the machine is idle (< QUIET_PCT % busy over 1 s)
  local i a b pct=0 ncpu; ncpu=$(nproc)
  for i in $(seq "${QUIET_WAIT:-30}"); do
    a=$(busy); sleep 1; b=$(busy)
    pct=$(( (b - a) * 100 / $(getconf CLK_TCK) / ncpu ))
    [ "$pct" -lt "${QUIET_PCT:-15}" ] && return 0
  done
  log "machine still ${pct}% busy after ${QUIET_WAIT:-30}s of waiting; measuring anyway (see other_cpu)"
}

measure() {     # TARGET PROTO ROUND -> $R/TARGET.PROTO.ROUND.{h2load.txt,log.tsv,cpu.json}
  local t=$1 proto=$2 r=$3 o=$R/$1.$2.$3 url cookie pids ups a b ua ub ma mb ca cb t0 t1 lines=null al
  url=$(url_of "$t"); cookie=$(cookie_of "$t"); pids=$(pids_of "$t"); ups=$(upstream_pids)
  al=$T/logs/access.jsonl; [ "$t" != portvakt-redis ] || al=$T/logs-redis/access.jsonl
  load "$proto" "$url" "$cookie" "$WARM" >/dev/null 2>&1 3>/dev/null || true
  sleep 0.5; [ ! -f "$al" ] || : >"$al"          # let the log writer drain the warm-up
  quiet
  local perf_pid=""
  if [ -n "${PERF:-}" ] && [[ $t == portvakt-* || $t == pingora-bare ]]; then
    perf record -q -F "${PERF_HZ:-499}" --call-graph dwarf,16384 -p "$pids" -o "$o.perf.data" 2>/dev/null &
    perf_pid=$!; sleep 0.5
  fi
  a=$(ticks $pids); ua=$(ticks $ups); ma=$(busy); ca=$(ctxsw $pids); t0=$(date +%s.%N)
  load "$proto" "$url" "$cookie" "$N" --log-file="$o.log.tsv" >"$o.h2load.txt" 2>&1 3>"$o.gen" ||
    log "$t $proto: h2load failed or timed out (see $o.h2load.txt)"
  t1=$(date +%s.%N)
  sleep 0.5                                      # async log writer catches up (its CPU counts)
  b=$(ticks $pids); ub=$(ticks $ups); mb=$(busy); cb=$(ctxsw $pids)
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" || true
    local rep=${OUT%.json}-perf-$t-$proto.txt
    { echo "# perf report --no-children (self time by symbol), $t $proto"
      perf report -i "$o.perf.data" --no-children --stdio --sort symbol -g none --percent-limit 0.3 2>/dev/null | grep -v '^$'
      echo; echo "# perf report --children (inclusive, by symbol)"
      perf report -i "$o.perf.data" --children --stdio --sort symbol -g none --percent-limit 2 2>/dev/null | grep -v '^$'
    } >"$rep"; rm -f "$o.perf.data"; log "perf report: $rep"
  fi
  if [[ $t == portvakt-* ]] && [ -f "$al" ]; then lines=$(wc -l <"$al"); : >"$al"; fi
  cat >"$o.cpu.json" <<EOF
{"target": "$t", "proto": "$proto", "round": $r, "n": $N, "url": "$url",
 "proxy_ticks": $((b - a)), "upstream_ticks": $((ub - ua)), "clk_tck": $(getconf CLK_TCK),
 "proxy_ctxsw": $((cb - ca)), "loadgen_ticks": $(cat "$o.gen" 2>/dev/null || echo 0), "machine_busy_ticks": $((mb - ma)), "ncpu": $(nproc),
 "wall_s": $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}'),
 "proxy_pids": "$(echo $pids)", "access_log_lines": $lines}
EOF
  python3 "$BENCH/report.py" --one "$o" >&2
}

# ---- the run ---------------------------------------------------------------------------
log "N=$N per target and protocol, warm-up $WARM, rounds $ROUNDS, server.threads $THREADS"
for r in $(seq "$ROUNDS"); do
  for t in $TARGETS; do
    case $t in nginx-*) start_peer "$t" ;; esac
    sanity "$t"
    for proto in $PROTOS; do measure "$t" "$proto" "$r"; done
    case $t in nginx-*) stop_peer "$t" ;; esac
  done
done

# ---- meta + report ---------------------------------------------------------------------
if [ -n "${REV:-}" ]; then rev=$REV      # e.g. when BIN was built from another tree
else
  rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
  [ -z "${BIN_GIVEN:-}" ] || rev="$rev (BIN given: $BIN)"
fi
python3 - "$T/meta.json" <<EOF
import json, os, platform, subprocess, sys
def sh(c):
    try: return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip() or subprocess.run(c, shell=True, capture_output=True, text=True).stderr.strip()
    except Exception: return ""
json.dump({
  "date": sh("date -u +%Y-%m-%dT%H:%M:%SZ"), "repo_rev": "$rev", "binary": "$BIN",
  "n": $N, "warm": $WARM, "rounds": $ROUNDS, "server_threads": $THREADS,
  "h1": "h2load --h1 -c $C1", "h2": "h2load -c $C2 -m $M2",
  "portvakt_access_log": "on (JSON lines to a file)",
  "extra_config": """${EXTRA_CONFIG:-}""",
  "upstream": "$UPSTREAM (peers' direct nginx)",
  "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), "nproc": os.cpu_count(),
  "kernel": platform.release(), "h2load": sh("h2load --version"), "nginx": sh("nginx -v 2>&1"),
}, open(sys.argv[1], "w"), indent=1)
EOF
python3 "$BENCH/report.py" "$R" "$T/meta.json" "$OUT"
