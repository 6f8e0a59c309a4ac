#!/usr/bin/env bash
# npm run demo: builds a throw-away lab (three network namespaces: client,
# ssh server, target network), runs sshuttle-ts in the client for the target
# network, shows requests going through the tunnel, and tears it all down.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (network namespaces); try: sudo npm run demo" >&2; exit 2; }
[ -f dist/bundle/main.mjs ] || npm run build >/dev/null
NAME=demo$$
PID=
cleanup() {
  [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  bash test/lab/lab.sh down "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "building the lab $NAME (client, ssh server, target 203.0.113.0/24)"
bash test/lab/lab.sh up "$NAME" >/dev/null
# shellcheck disable=SC1090
source "/tmp/$NAME/env"
C=$LAB_CLIENT_NS
say "without a tunnel, the client cannot reach the target"
ip netns exec "$C" curl -sS -m 2 "http://$LAB_TARGET_IP/" || true
say "starting: sshuttle-ts -r root@$LAB_SERVER_IP $LAB_TARGET_NET $LAB_TARGET_NET6"
ip netns exec "$C" ./bin/sshuttle-ts -v --ssh-config "$LAB_SSH_CONFIG" -r "root@$LAB_SERVER_IP" \
  "$LAB_TARGET_NET" "$LAB_TARGET_NET6" &
PID=$!
for _ in $(seq 100); do
  ip netns exec "$C" curl -s -m 1 -o /dev/null "http://$LAB_TARGET_IP/" && break
  sleep 0.1
done
say "through the tunnel: HTTP over IPv4 and IPv6"
ip netns exec "$C" curl -sS "http://$LAB_TARGET_IP/"
ip netns exec "$C" curl -sS "http://[$LAB_TARGET_IP6]/"
say "a 100 MiB download through the tunnel"
ip netns exec "$C" curl -sS -o /dev/null -w 'downloaded %{size_download} bytes at %{speed_download} B/s\n' "http://$LAB_TARGET_IP/bytes/100m"
say "the firewall rules while it runs"
ip netns exec "$C" nft list ruleset | grep -E 'table|redirect' || true
say "stopping sshuttle-ts (SIGTERM)"
kill -TERM "$PID"; wait "$PID" || true; PID=
say "rules left afterwards (none expected)"
ip netns exec "$C" nft list ruleset | grep -cE 'sshuttle' || true
say "done; tearing the lab down"
