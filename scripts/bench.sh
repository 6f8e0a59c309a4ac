#!/usr/bin/env bash
# npm run bench: in one lab, measure sshuttle-ts (direct and helper
# transports), stock sshuttle and a plain OpenSSH -L forward the same way
# (test/lab/bench-tunnel.sh, bench-extra.sh and bench-warmup.sh, each starting the
# tunnel afresh), BENCH_RUNS times, the tunnels taking turns within each run;
# then print every figure's median (min-max) and the ratios
# (scripts/bench-report.mjs). Needs root and the lab's packages (.ci/run
# installs them) plus Debian's sshuttle. See docs/performance.md.
#   BENCH_RUNS=3          runs per tunnel (each figure is the median)
#   BENCH_SECONDS=4       length of each timed measurement
#   BENCH_WARMUP_SECONDS=6  seconds of new connections in bench-warmup.sh
#   BENCH_ONLY="ts helper stock ssh"   subset, in this order
#   BENCH_CONNS=1000      connections held open together
#   BENCH_OUT=bench-results/latest.json
#   BENCH_CHART=bench-results/latest.svg   the SVG chart (BENCH_CHART=docs/bench.svg
#                         to refresh the documentation's; BENCH_CHART= for none)
#   BENCH_NOTE="..."      a note for the chart and the JSON
# sshuttle-ts and stock sshuttle run with --dns (DNS queries/s is measured for
# them); OpenSSH -L forwards ports 80 and 5201 only (no DNS).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 2; }
[ -f dist/bundle/main.mjs ] || npm run build >/dev/null
NAME=bn$$
export LAB_NAME=$NAME
export BENCH_SECONDS=${BENCH_SECONDS:-4}
export BENCH_WARMUP_SECONDS=${BENCH_WARMUP_SECONDS:-6}
RUNS=${BENCH_RUNS:-3}
OUT=${BENCH_OUT:-bench-results/latest.json}
CHART=${BENCH_CHART-bench-results/latest.svg}
ONLY=${BENCH_ONLY:-"ts helper stock ssh"}
case " $ONLY " in *" stock "*)
  command -v sshuttle >/dev/null || { echo "bench: Debian's sshuttle is missing (apt-get install sshuttle)" >&2; exit 2; } ;;
esac
# 1,000 connections: the client, the tunnel and the server each hold one or
# two descriptors per connection.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$(dirname "$OUT")" bench-results
RAW=bench-results/raw-$NAME.txt
: >"$RAW"
cleanup() { bash test/lab/lab.sh down "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "bench: building lab $NAME" >&2
bash test/lab/lab.sh up "$NAME" >/dev/null
# shellcheck disable=SC1090
source "/tmp/$NAME/env"
SRV=$LAB_SERVER_IP
TS="$PWD/bin/sshuttle-ts"

# shellcheck source=scripts/lab-client.sh
source scripts/lab-client.sh # for settle_time_wait

measure() { # LABEL DNS(0|1) -- COMMAND...
  local label=$1 dns=$2 line
  shift 2
  for script in bench-tunnel bench-extra bench-warmup; do
    [ "$script" = bench-extra ] || settle_time_wait "$NAME-c"
    echo "bench: run $run/$RUNS, $label ($script)" >&2
    line=$(BENCH_DNS=$dns bash "test/lab/$script.sh" "$label" "$@" | tail -n 1) || true
    echo "  $line" >&2
    echo "$line" >>"$RAW"
  done
}

start=$(date +%s)
for run in $(seq "$RUNS"); do
  for what in $ONLY; do
    case $what in
      ts)
        measure sshuttle-ts 1 -- "$TS" --dns --ssh-config "$LAB_SSH_CONFIG" -r "root@$SRV" "$LAB_TARGET_NET" ;;
      helper)
        measure sshuttle-ts-helper 1 -- "$TS" --transport helper --dns --ssh-config "$LAB_SSH_CONFIG" -r "root@$SRV" "$LAB_TARGET_NET" ;;
      stock)
        measure sshuttle 1 -- sshuttle --method nft --dns -e "ssh -F $LAB_SSH_CONFIG" -r "root@$SRV" "$LAB_TARGET_NET" ;;
      ssh)
        # The ceiling of one SSH stream: forward the target's ports from the
        # target's own address, made local in the client namespace.
        measure openssh-L 0 -- bash -c "ip addr add $LAB_TARGET_IP/32 dev lo 2>/dev/null; trap 'ip addr del $LAB_TARGET_IP/32 dev lo' EXIT; ssh -N -F $LAB_SSH_CONFIG -L $LAB_TARGET_IP:80:$LAB_TARGET_IP:80 -L $LAB_TARGET_IP:5201:$LAB_TARGET_IP:5201 root@$SRV & wait" ;;
      *) echo "bench: unknown tunnel '$what' in BENCH_ONLY (ts helper stock ssh)" >&2; exit 2 ;;
    esac
  done
done
echo "bench: measured in $(( $(date +%s) - start )) s; raw lines in $RAW" >&2
echo
node scripts/bench-report.mjs "$OUT" ${CHART:+"$CHART"} <"$RAW"
