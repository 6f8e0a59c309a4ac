#!/usr/bin/env bash
# What a tunnel costs, in figures that hold up on a busy machine: resident
# memory and CPU seconds (not wall-clock speed). In an existing lab
# (test/lab/lab.sh up NAME; LAB_NAME=NAME):
#
#   bench-cost.sh LABEL -- COMMAND [ARGS...]
#
# COMMAND is started in the client namespace in its own process group, twice:
#   1. idle_rss_mb    VmRSS of its process tree once a first request went through
#      rss1k_mb       VmRSS with BENCH_CONNS (1000) keep-alive connections open
#                     (scripts/bench-probe.mjs conns), hwm1k_mb its VmHWM after
#   2. up_cpu_s / down_cpu_s   CPU seconds (user+sys) of the process tree to move
#                     BENCH_BYTES (100M) with iperf3 up, then down (-R);
#                     srv_up_cpu_s / srv_down_cpu_s the same for `node`
#                     processes in the server namespace (the helper transport)
#      up_s / down_s  wall-clock seconds of those transfers (load-sensitive)
#      hwm_bulk_mb    VmHWM of the process tree after both transfers
#      newconn_cpu_ms CPU milliseconds of the process tree per HTTP request on
#                     a new connection (wrk -c10, Connection: close, 5 s);
#                     newconn_n how many it made (its rate is load-sensitive)
# BENCH_CONNS=0 skips step 1; BENCH_REPEAT=N (default 1) makes N transfers each
# way and N new-connection runs and reports the median of each figure.
# and prints one line: LABEL key=value ...
set -uo pipefail
LABEL=$1; shift; [ "${1:-}" = "--" ] && shift
NAME=${LAB_NAME:-lab}; C=$NAME-c; S=$NAME-s; N=${BENCH_CONNS:-1000}; BYTES=${BENCH_BYTES:-100M}
T=203.0.113.2
PROBE="$(cd "$(dirname "$0")/.." && pwd)/scripts/bench-probe.mjs"
inc() { ip netns exec "$C" "$@"; }
ulimit -n 65536 2>/dev/null || true

PID=
start_tunnel() {
  setsid ip netns exec "$C" "$@" >"/tmp/bench-cost-$LABEL.log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do
    inc curl -s -m 1 -o /dev/null "http://$T/" && return 0
    kill -0 $PID 2>/dev/null || break
    sleep 0.1
  done
  echo "$LABEL error=tunnel-never-came-up (log: /tmp/bench-cost-$LABEL.log)"
  kill -- -$PID 2>/dev/null
  exit 1
}
stop_tunnel() {
  kill -TERM -- -$PID 2>/dev/null
  for _ in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- -$PID 2>/dev/null
  sleep 1
}
group() { pgrep -g "$(ps -o pgid= $PID | tr -d ' ')" 2>/dev/null; }
sum_status() { # FIELD: kB summed over the tree, printed in MB
  local kb=0 p r
  for p in $(group); do
    r=$(awk -v f="$1:" '$1==f {print $2}' /proc/$p/status 2>/dev/null); kb=$((kb + ${r:-0}))
  done
  echo $((kb / 1024))
}
ticks() { # PIDS...: utime+stime in clock ticks
  local n=0 p v
  for p in "$@"; do
    v=$(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null); n=$((n + ${v:-0}))
  done
  echo $n
}
server_nodes() { for p in $(ip netns pids "$S"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = node ] && echo $p; done; }
HZ=$(getconf CLK_TCK)
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }

REPEAT=${BENCH_REPEAT:-1}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

idle=; conns=; hwm1k=
if [ "$N" -gt 0 ]; then
  start_tunnel "$@"
  sleep 2
  idle=$(sum_status VmRSS)
  conns=$(inc node "$PROBE" conns $T 80 "$N" "$(ps -o pgid= $PID | tr -d ' ')")
  hwm1k=$(sum_status VmHWM)
  stop_tunnel
fi

start_tunnel "$@"
transfer() { # iperf3 args: prints "cpu_s srv_cpu_s wall_s"
  local pids srv a b sa sb t0 t1
  pids=$(group); srv=$(server_nodes)
  a=$(ticks $pids); sa=$(ticks $srv); t0=$(date +%s%3N)
  inc iperf3 -c $T -n "$BYTES" "$@" >/dev/null 2>&1
  t1=$(date +%s%3N); b=$(ticks $pids); sb=$(ticks $srv)
  echo "$(secs $((b - a))) $(secs $((sb - sa))) $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.2f", d / 1000 }')"
}
U=(); US=(); UW=(); D=(); DS=(); DW=(); NC=(); NN=()
for _ in $(seq "$REPEAT"); do
  read -r a b c <<<"$(transfer)"; U+=("$a"); US+=("$b"); UW+=("$c")
  read -r a b c <<<"$(transfer -R)"; D+=("$a"); DS+=("$b"); DW+=("$c")
done
hwm=$(sum_status VmHWM)
for _ in $(seq "$REPEAT"); do
  pids=$(group); a=$(ticks $pids)
  n=$(inc wrk -t1 -c10 -d5s -H "Connection: close" "http://$T/" 2>/dev/null | awk '/requests in/ {print $1}')
  b=$(ticks $pids)
  NN+=("${n:-0}")
  NC+=("$(awk -v t=$((b - a)) -v hz="$HZ" -v n="${n:-0}" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1000 / n }')")
done
stop_tunnel
ucpu=$(echo "${U[*]}" | median); usrv=$(echo "${US[*]}" | median); uwall=$(echo "${UW[*]}" | median)
dcpu=$(echo "${D[*]}" | median); dsrv=$(echo "${DS[*]}" | median); dwall=$(echo "${DW[*]}" | median)
nc=$(echo "${NC[*]}" | median); n=$(echo "${NN[*]}" | median)
[ "$N" -gt 0 ] || conns="conn_ok= conn_err= conn_open_s= rss1k_mb="
echo "$LABEL idle_rss_mb=$idle $conns hwm1k_mb=$hwm1k up_cpu_s=$ucpu down_cpu_s=$dcpu srv_up_cpu_s=$usrv srv_down_cpu_s=$dsrv up_s=$uwall down_s=$dwall hwm_bulk_mb=$hwm newconn_cpu_ms=$nc newconn_n=${n:-0}"
