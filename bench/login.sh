#!/usr/bin/env bash
# login.sh SERVICE_HOST PORT USER PASSWORD — log in to a running portvakt through its
# real browser flow and print the session cookie for SERVICE_HOST ("__Host-portvakt=…").
#
#   GET  https://SERVICE_HOST:PORT/            -> 302 to the portal's login page
#   GET  login page (flow cookie; hidden inputs csrf and rd)
#   POST /.portvakt/login                       -> 303 to SERVICE_HOST/.portvakt/handoff?code=…
#   GET  the handoff URL                        -> Set-Cookie: __Host-portvakt=… (host-only)
#
# Every request goes to 127.0.0.1 with the real host names (curl --resolve), so SNI and
# Host are what a browser would send. -k: the bench uses a self-signed certificate.
set -euo pipefail
host=${1:?usage: login.sh SERVICE_HOST PORT USER PASSWORD} port=${2:?} user=${3:?} pass=${4:?}
tmp=$(mktemp -d /tmp/portvakt-login.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
jar=$tmp/jar
# resolve every *.localhost name the flow may touch
resolve=()
for h in "$host" ${PORTAL_HOST:-portal.localhost}; do resolve+=(--resolve "$h:$port:127.0.0.1"); done
c() { curl -sk --max-time 10 "${resolve[@]}" -b "$jar" -c "$jar" "$@"; }

login_url=$(c -o /dev/null -w '%{redirect_url}' "https://$host:$port/")
[ -n "$login_url" ] || { echo "login.sh: no redirect to the login page from https://$host:$port/" >&2; exit 1; }
page=$(c "$login_url")
field() { sed -n "s/.*name=\"$1\" value=\"\([^\"]*\)\".*/\1/p" <<<"$page" | head -1; }
csrf=$(field csrf) rd=$(field rd)
[ -n "$csrf" ] || { echo "login.sh: no csrf field on $login_url" >&2; exit 1; }
# the form posts to its own origin (the portal)
origin=$(sed -E 's#^(https://[^/]+).*#\1#' <<<"$login_url")
handoff=$(c -o /dev/null -w '%{redirect_url}' \
  --data-urlencode "csrf=$csrf" --data-urlencode "rd=$rd" \
  --data-urlencode "username=$user" --data-urlencode "password=$pass" \
  "$origin/.portvakt/login")
[[ $handoff == */.portvakt/handoff* ]] ||
  { echo "login.sh: login did not hand off (redirect: '$handoff'); wrong password?" >&2; exit 1; }
cookie=$(c -o /dev/null -D - "$handoff" |
  sed -n 's/^[Ss]et-[Cc]ookie: *\(__Host-portvakt=[^;]*\).*/\1/p' | tr -d '\r' | head -1)
[ -n "$cookie" ] || { echo "login.sh: the handoff set no session cookie" >&2; exit 1; }
echo "$cookie"
