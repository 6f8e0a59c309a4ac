# Sourced by the profiling scripts (bench-profile.sh, bench-flame.sh): root and
# a build, a lab of their own that goes when the script ends, and the client's
# command line as bin/sshuttle-ts's shebang gives it (environment, node and
# V8 flags), so a profiled client runs as a user's does.
#   lab_up WHO NAME   checks, builds if needed, brings up lab NAME, sources its env
#   client_node       prints the shebang's command up to `node`'s flags, one word a line
#   stop_client       stops $PID's process group (never fails)
#   settle_time_wait NS   waits (at most 60 s) until NS holds fewer than 5,000
#                     connections in TIME_WAIT
# Callers set PID to the client's process group when they start one.
PID=
lab_up() {
  LAB_WHO=$1
  LAB_NAME_OWN=$2
  [ "$(id -u)" = 0 ] || { echo "$LAB_WHO: needs root (network namespaces)" >&2; exit 2; }
  [ -f dist/bundle/main.mjs ] || npm run build >/dev/null
  trap lab_cleanup EXIT
  bash test/lab/lab.sh up "$LAB_NAME_OWN" >/dev/null
  # shellcheck disable=SC1090
  source "/tmp/$LAB_NAME_OWN/env"
}
stop_client() { # never fails: it also runs from the EXIT trap under set -e
  if [ -n "$PID" ]; then
    kill -TERM -- -"$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- -"$PID" 2>/dev/null || true
  fi
  PID=
}
lab_cleanup() {
  stop_client
  bash test/lab/lab.sh down "$LAB_NAME_OWN" >/dev/null 2>&1 || true
}
client_node() {
  head -n 1 bin/sshuttle-ts | sed 's/^#!\/usr\/bin\/env -S //' | tr ' ' '\n' | grep -v '^$'
}
inc() { ip netns exec "$LAB_CLIENT_NS" "$@"; }

# Every new-connection test leaves its connections in TIME_WAIT in the client
# namespace for a minute, and the ephemeral ports run out near 28,000 (OpenSSH
# -L opens 3,000/s: its warm-up collapsed to 160 req/s in its sixth second
# when it followed bench-tunnel's test at once). Before each test that opens
# connections by the thousand, let them drain.
settle_time_wait() {
  local i n
  for i in $(seq 60); do
    n=$(ip netns exec "$1" ss -tan state time-wait 2>/dev/null | tail -n +2 | wc -l)
    [ "$n" -lt 5000 ] && return
    sleep 1
  done
}
