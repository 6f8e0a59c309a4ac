#!/usr/bin/env bash
# CPU profile of the sshuttle-ts client during bulk transfers, in a lab of its
# own: node --cpu-prof runs bin/sshuttle-ts, with the V8 flags of its shebang
# (direct transport unless PROFILE_ARGS says otherwise), while iperf3 sends
# PROFILE_SECONDS (default 8) up, then the same down; the client is stopped with SIGINT so V8 writes the
# profile, and scripts/bench-profile-summary.mjs prints where the time went.
#   PROFILE_DIR=bench-results/prof   PROFILE_ARGS="--transport helper"
# Open the .cpuprofile in Chrome DevTools (Performance) for a flame graph.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "profile: needs root (network namespaces)" >&2; exit 2; }
[ -f dist/bundle/main.mjs ] || npm run build >/dev/null
NAME=bp$$
DIR=$(realpath -m "${PROFILE_DIR:-bench-results/prof}")
SECS=${PROFILE_SECONDS:-8}
mkdir -p "$DIR"
PID=
cleanup() {
  [ -n "$PID" ] && kill -KILL -- -"$PID" 2>/dev/null
  bash test/lab/lab.sh down "$NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash test/lab/lab.sh up "$NAME" >/dev/null
# shellcheck disable=SC1090
source "/tmp/$NAME/env"
inc() { ip netns exec "$LAB_CLIENT_NS" "$@"; }
before=$(ls "$DIR")
# shellcheck disable=SC2086
setsid ip netns exec "$LAB_CLIENT_NS" env MALLOC_ARENA_MAX=2 MALLOC_TRIM_THRESHOLD_=4194304 node --max-semi-space-size=2 --heap-growing-percent=30 --cpu-prof --cpu-prof-dir="$DIR" bin/sshuttle-ts \
  ${PROFILE_ARGS:-} --ssh-config "$LAB_SSH_CONFIG" -r "root@$LAB_SERVER_IP" "$LAB_TARGET_NET" \
  >"$DIR/client.log" 2>&1 &
PID=$!
for _ in $(seq 200); do inc curl -s -m 1 -o /dev/null "http://$LAB_TARGET_IP/" && break; sleep 0.1; done
inc iperf3 -c "$LAB_TARGET_IP" -t "$SECS" -f M | awk '/receiver/ {print "profile: up " $7 " MB/s"}'
inc iperf3 -R -c "$LAB_TARGET_IP" -t "$SECS" -f M | awk '/receiver/ {print "profile: down " $7 " MB/s"}'
# The node process itself (ip netns exec execs it): SIGINT, a clean stop.
kill -INT "$PID"
for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
PID=
new=$(comm -13 <(echo "$before" | sort) <(ls "$DIR" | sort) | grep '\.cpuprofile$' | head -n 1)
[ -n "$new" ] || { echo "profile: no .cpuprofile written (log: $DIR/client.log)" >&2; exit 1; }
node scripts/bench-profile-summary.mjs "$DIR/$new"
