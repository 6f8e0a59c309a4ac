#!/usr/bin/env bash
# CPU profile of the sshuttle-ts client during bulk transfers, in a lab of its
# own: node --cpu-prof runs bin/sshuttle-ts, with the V8 flags of its shebang
# (direct transport unless PROFILE_ARGS says otherwise), while iperf3 sends
# PROFILE_SECONDS (default 8) up, then the same down; the client is stopped with SIGINT so V8 writes the
# profile, and scripts/bench-profile-summary.mjs prints where the time went.
#   PROFILE_DIR=bench-results/prof   PROFILE_ARGS="--transport helper"
# A flame graph of it is written beside it (scripts/flamegraph.mjs, .svg); the
# .cpuprofile also opens in Chrome DevTools (Performance) or speedscope.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lab-client.sh
source scripts/lab-client.sh
DIR=$(realpath -m "${PROFILE_DIR:-bench-results/prof}")
SECS=${PROFILE_SECONDS:-8}
mkdir -p "$DIR"
lab_up profile "bp$$"
mapfile -t NODE < <(client_node)
before=$(ls "$DIR")
# shellcheck disable=SC2086
setsid ip netns exec "$LAB_CLIENT_NS" env "${NODE[@]}" --cpu-prof --cpu-prof-dir="$DIR" bin/sshuttle-ts \
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
node scripts/flamegraph.mjs "$DIR/$new" "$DIR/${new%.cpuprofile}.svg" \
  --title "sshuttle-ts client, ${PROFILE_SECONDS:-8} s up then down (V8 --cpu-prof)"
