#!/usr/bin/env bash
# Flame graphs of the sshuttle-ts client under load, from Linux perf (which,
# unlike V8's --cpu-prof, samples CPU time: a thread waiting in a system call
# is not counted), in a lab of its own. For each load the client starts
# afresh with node --perf-basic-prof (so perf can name JIT-compiled code) and
# its shebang's V8 flags, the load runs FLAME_SECONDS + 2 s, and perf records
# the client for FLAME_SECONDS (default 3) after the first 2:
#   newconn   direct transport, wrk -c10 with Connection: close (after 5 s of
#             the same, so the connection path is warm)
#   download  direct transport, iperf3 -R
#   helper-download   the same through the helper transport
#   helper-newconn    new connections through the helper transport
# Each gives FLAME_DIR/LOAD.svg (scripts/flamegraph.mjs) and LOAD.perf.txt.
# FLAME_REMOTE=1 records the remote helper instead of the client for the
# helper loads (the lab's server shares this file system, so its node is
# started through a wrapper that adds --perf-basic-prof).
#   FLAME_DIR=bench-results/flame   FLAME_LOADS="newconn download helper-download"
# Needs root and perf (Debian: apt-get install linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lab-client.sh
source scripts/lab-client.sh
command -v perf >/dev/null || { echo "flame: perf is missing (apt-get install linux-perf)" >&2; exit 2; }
DIR=$(realpath -m "${FLAME_DIR:-bench-results/flame}")
SECS=${FLAME_SECONDS:-3}
mkdir -p "$DIR"
lab_up flame "bf$$"
mapfile -t NODE < <(client_node)
T=$LAB_TARGET_IP

for load in ${FLAME_LOADS:-newconn download helper-download}; do
  settle_time_wait "$LAB_CLIENT_NS" # after a new-connection load
  args=()
  case $load in
    newconn | download) ;;
    helper-download | helper-newconn) args=(--transport helper) ;;
    *) echo "flame: unknown load '$load' (newconn download helper-download helper-newconn)" >&2; exit 2 ;;
  esac
  remote=
  if [ "${FLAME_REMOTE:-}" = 1 ] && [ "${args[*]}" = "--transport helper" ]; then
    remote=1
    printf '#!/bin/sh\nexec node --perf-basic-prof "$@"\n' >"$DIR/node-perf.sh"
    chmod +x "$DIR/node-perf.sh"
    args+=(--node "$DIR/node-perf.sh")
  fi
  setsid ip netns exec "$LAB_CLIENT_NS" env "${NODE[@]}" --perf-basic-prof bin/sshuttle-ts \
    "${args[@]}" --ssh-config "$LAB_SSH_CONFIG" -r "root@$LAB_SERVER_IP" "$LAB_TARGET_NET" \
    >"$DIR/$load.log" 2>&1 &
  PID=$! # ip netns exec and env exec node: the same process, perf's target
  for _ in $(seq 200); do inc curl -s -m 1 -o /dev/null "http://$T/" && break; sleep 0.1; done
  TARGET=$PID
  if [ -n "$remote" ]; then
    TARGET=$(for p in $(pgrep -f 'sshuttle-ts-helpe[r]'); do
      [ "$(ip netns identify "$p")" = "$LAB_SERVER_NS" ] && echo "$p"; done | head -n 1)
    [ -n "$TARGET" ] || { echo "flame: no remote helper found for $load" >&2; exit 1; }
  fi
  case $load in
    newconn | helper-newconn)
      inc wrk -t1 -c10 -d5s -H 'Connection: close' "http://$T/" >/dev/null
      inc wrk -t1 -c10 -d$((SECS + 2))s -H 'Connection: close' "http://$T/" >"$DIR/$load.load.txt" &
      ;;
    *) inc iperf3 -R -c "$T" -t $((SECS + 2)) -f M >"$DIR/$load.load.txt" & ;;
  esac
  L=$!
  sleep 1.5
  perf record -q -e cpu-clock -g -o "$DIR/$load.perf.data" -p "$TARGET" -- sleep "$SECS" 2>/dev/null
  wait $L
  rate=$(awk '/receiver/ {print $7 " MB/s"} /Requests\/sec/ {print $2 " req/s"}' "$DIR/$load.load.txt")
  perf script -i "$DIR/$load.perf.data" 2>/dev/null >"$DIR/$load.perf.txt"
  rm -f "/tmp/perf-$PID.map" "/tmp/perf-$TARGET.map" # --perf-basic-prof's symbol maps
  stop_client
  rm -f "$DIR/$load.perf.data"
  who="sshuttle-ts client"
  [ -n "$remote" ] && who="sshuttle-ts remote helper"
  echo "flame: $load at $rate ($who)" >&2
  node scripts/flamegraph.mjs "$DIR/$load.perf.txt" "$DIR/$load.svg" \
    --title "$who, $load (perf, ${SECS} s)" \
    --subtitle "$rate; $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u '+%Y-%m-%d %H:%M UTC'); width = share of the process's CPU samples, all threads"
done
