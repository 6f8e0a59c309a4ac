#!/usr/bin/env bash
# The figures bench-tunnel.sh does not take, for the same kind of tunnel command:
#
#   bench-extra.sh LABEL -- COMMAND [ARGS...]
#
# COMMAND is started in the client namespace, in its own process group, as in
# bench-tunnel.sh. Measures (with scripts/bench-probe.mjs, in the client ns):
#   first_byte_ms   from starting COMMAND to the first byte of an HTTP answer
#                   from 203.0.113.2 through it (probes every 20 ms)
#   conn_ok/conn_err  1,000 keep-alive HTTP connections opened (50 at a time),
#                   each answered once, all held open together; err = failed,
#                   unanswered or closed while held
#   conn_open_s     seconds to open and get an answer on all of them (at most
#                   BENCH_CONN_DEADLINE, default 15; later ones are errors)
#   rss1k_mb        VmRSS of the tunnel's process tree while they are open
#   dns_qps         UDP DNS answers/s from 192.0.2.53 (answered only through
#                   the tunnel) with 16 queries in flight, BENCH_SECONDS long;
#                   only when BENCH_DNS=1 (the tunnel was given --dns)
# and prints them as one line: LABEL key=value ...
# Environment: LAB_NAME (default lab), BENCH_SECONDS (default 5), BENCH_DNS,
# BENCH_CONNS (default 1000). Needs an open-files limit above 2 x BENCH_CONNS.
set -uo pipefail
LABEL=$1; shift; [ "${1:-}" = "--" ] && shift
NAME=${LAB_NAME:-lab}; C=$NAME-c; SECS=${BENCH_SECONDS:-5}; N=${BENCH_CONNS:-1000}
T=203.0.113.2
PROBE="$(cd "$(dirname "$0")/../.." && pwd)/scripts/bench-probe.mjs"
inc() { ip netns exec "$C" "$@"; }
FB=$(mktemp)
trap 'rm -f "$FB"' EXIT

# Start the prober first (node takes a moment to boot), then the tunnel.
inc node "$PROBE" firstbyte $T 80 "$FB" &
FBPID=$!
sleep 0.5
t0=$(date +%s%3N)
setsid ip netns exec "$C" "$@" >"/tmp/bench-extra-$LABEL.log" 2>&1 &
PID=$!
for i in $(seq 300); do
  [ -s "$FB" ] && break
  kill -0 $PID 2>/dev/null || break
  sleep 0.1
done
if [ ! -s "$FB" ]; then
  kill $FBPID 2>/dev/null; kill -- -$PID 2>/dev/null
  echo "$LABEL error=tunnel-never-came-up (log: /tmp/bench-extra-$LABEL.log)"; exit 1
fi
wait $FBPID 2>/dev/null
first=$(( $(cat "$FB") - t0 ))
PGID=$(ps -o pgid= $PID | tr -d ' ')

# DNS first, on a fresh tunnel: a tunnel that struggles with 1,000
# connections must not spoil its DNS figure.
dns="dns_qps="
if [ "${BENCH_DNS:-0}" = 1 ]; then
  dns=$(inc node "$PROBE" dns 192.0.2.53 web.lab.test "$SECS")
fi
conns=$(inc node "$PROBE" conns $T 80 "$N" "$PGID")

kill -TERM -- -$PID 2>/dev/null
for i in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done
kill -KILL -- -$PID 2>/dev/null
# Let the tunnel's firewall cleanup finish before the next tunnel starts.
sleep 1
echo "$LABEL first_byte_ms=$first $conns $dns"
