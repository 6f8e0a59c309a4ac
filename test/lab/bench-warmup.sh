#!/usr/bin/env bash
# How a tunnel's new-connection rate changes in its first seconds of load.
#
#   LAB_NAME=NAME bash test/lab/bench-warmup.sh LABEL -- COMMAND [ARGS...]
#
# Starts COMMAND in the lab's client namespace (as test/lab/bench-tunnel.sh
# does), waits until http://203.0.113.2/ answers through it, then runs
# BENCH_WARMUP_SECONDS (default 8) one-second wrk runs back to back, each
# with 10 connections and a new TCP connection per request, and prints per
# second the requests/s and the CPU per request of the tunnel's process group
# on the client (user + system, all threads, in µs). A JIT runtime starts slow
# and speeds up as its compiler catches up; bench-tunnel.sh measures the
# first BENCH_SECONDS of this load, so this shows what that figure is made of.
# Prints one line: LABEL newconn_first_rps=(second 1) newconn_warm_rps=(median
# of the last half) newconn_by_second=a,b,... cpu_us_per_req=a,b,...
set -uo pipefail
LABEL=$1; shift; [ "${1:-}" = "--" ] && shift
NAME=${LAB_NAME:-lab}; C=$NAME-c; SECS=${BENCH_WARMUP_SECONDS:-8}
T=203.0.113.2
inc() { ip netns exec "$C" "$@"; }

setsid ip netns exec "$C" "$@" >"/tmp/bench-warmup-$LABEL.log" 2>&1 &
PID=$!
stop() {
  kill -TERM -- -$PID 2>/dev/null
  for i in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -$PID 2>/dev/null
  sleep 1 # the tunnel's firewall cleanup, before the next tunnel starts
}
trap stop EXIT
ok=0
for i in $(seq 200); do
  if inc curl -s -m 1 -o /dev/null "http://$T/"; then ok=1; break; fi
  kill -0 $PID 2>/dev/null || break
  sleep 0.1
done
if [ $ok = 0 ]; then
  echo "$LABEL error=tunnel-never-came-up (log: /tmp/bench-warmup-$LABEL.log)"; exit 1
fi
PGID=$(ps -o pgid= $PID | tr -d ' ')
# Clock ticks (utime + stime) of every process in the group, all threads.
ticks() {
  local sum=0 p v
  for p in $(pgrep -g "$PGID"); do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null) && sum=$((sum + v))
  done
  echo $sum
}
HZ=$(getconf CLK_TCK)
rates=(); costs=()
for s in $(seq "$SECS"); do
  before=$(ticks)
  n=$(inc wrk -t1 -c10 -d1s -H "Connection: close" "http://$T/" 2>/dev/null | awk '/requests in/ {print $1}')
  after=$(ticks)
  n=${n:-0}
  rates+=("$n")
  if [ "$n" -gt 0 ]; then costs+=($(( (after - before) * 1000000 / HZ / n ))); else costs+=(-); fi
  echo "  second $s: $n req/s, $(( (after - before) * 1000 / HZ )) ms CPU" >&2
done
warm=$(printf '%s\n' "${rates[@]:$((SECS / 2))}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}')
echo "$LABEL newconn_first_rps=${rates[0]} newconn_warm_rps=$warm newconn_by_second=$(IFS=,; echo "${rates[*]}") cpu_us_per_req=$(IFS=,; echo "${costs[*]}")"
