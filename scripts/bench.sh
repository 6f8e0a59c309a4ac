#!/usr/bin/env bash
# npm run bench: in one lab, measure sshuttle-ts, stock sshuttle and a plain
# OpenSSH -L forward the same way (test/lab/bench-tunnel.sh), then print the
# figures and the ratios. Needs root and the lab's packages (.ci/run installs
# them) plus Debian's sshuttle.
#   BENCH_SECONDS=5 (per measurement)   BENCH_ONLY="ts stock ssh" (subset)
#   BENCH_OUT=bench-results/latest.json
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench: needs root (network namespaces)" >&2; exit 2; }
[ -f dist/cli/main.js ] || npm run build >/dev/null
NAME=bn$$
export LAB_NAME=$NAME
OUT=${BENCH_OUT:-bench-results/latest.json}
ONLY=${BENCH_ONLY:-"ts stock ssh"}
mkdir -p "$(dirname "$OUT")"
cleanup() { bash test/lab/lab.sh down "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
echo "bench: building lab $NAME" >&2
bash test/lab/lab.sh up "$NAME" >/dev/null
# shellcheck disable=SC1090
source "/tmp/$NAME/env"
SRV=$LAB_SERVER_IP
TS="$PWD/bin/sshuttle-ts"
results=()

run() { # LABEL -- COMMAND...
  echo "bench: measuring $1" >&2
  local line
  line=$(bash test/lab/bench-tunnel.sh "$@" | tail -n 1)
  echo "$line" >&2
  results+=("$line")
}

for what in $ONLY; do
  case $what in
    ts)
      run sshuttle-ts -- "$TS" --ssh-config "$LAB_SSH_CONFIG" -r "root@$SRV" "$LAB_TARGET_NET" ;;
    stock)
      command -v sshuttle >/dev/null || { echo "bench: Debian's sshuttle is missing (apt-get install sshuttle)" >&2; exit 2; }
      run sshuttle -- sshuttle --method nft -e "ssh -F $LAB_SSH_CONFIG" -r "root@$SRV" "$LAB_TARGET_NET" ;;
    ssh)
      # The ceiling of one SSH stream: forward the target's ports from the
      # target's own address, made local in the client namespace.
      run openssh-L -- bash -c "ip addr add $LAB_TARGET_IP/32 dev lo 2>/dev/null; trap 'ip addr del $LAB_TARGET_IP/32 dev lo' EXIT; ssh -N -F $LAB_SSH_CONFIG -L $LAB_TARGET_IP:80:$LAB_TARGET_IP:80 -L $LAB_TARGET_IP:5201:$LAB_TARGET_IP:5201 root@$SRV & wait" ;;
  esac
done

printf '%s\n' "${results[@]}" | node scripts/bench-report.mjs "$OUT"
