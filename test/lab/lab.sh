#!/usr/bin/env bash
# A three-host test network on one machine, built from Linux network namespaces.
# (The project's own copy of ../shared/lab/lab.sh: same interface and addresses.)
#
#   client (NAME-c)            server (NAME-s)                target (NAME-t)
#   198.51.100.2  ---veth---   198.51.100.1   203.0.113.1  ---veth---  203.0.113.2
#   2001:db8:1::2              2001:db8:1::1  2001:db8:2::1             2001:db8:2::2
#
# The client can reach the server (sshd on port 22) but NOT the target network:
# the server does not forward packets. Only a tunnel through ssh reaches it.
# The target runs: HTTP (nginx) on 80 (/ and /bytes/1k|64k|1m|100m), iperf3 on 5201,
# a TCP echo and a UDP echo on 7, and a DNS server on 53 that answers for the zone lab.test.
# The client's resolv.conf points at 192.0.2.53, which nothing answers, so
# name lookups only work when DNS is carried through the tunnel. Each
# namespace has its own /etc/hosts and /etc/resolv.conf (bind-mounted by
# `ip netns exec` from /etc/netns/NS/); the server's hosts file knows
# web.lab.test and printer.lab.test (203.0.113.7), the client's does not.
# Files live in LAB_DIR (default /tmp/NAME): the ssh key id_ed25519, ssh_config
# (no host-key checking), ssh_config_strict and known_hosts (the server's key
# for 198.51.100.1 and 2001:db8:1::1), env (the variables below).
# `up` returns once sshd, nginx, iperf3, the TCP echo and DNS accept
# connections; if any step fails it tears down what it built and exits non-zero.
# `down` is idempotent. Keep NAME short (interfaces are named NAME-x).
#
# Needs root, iproute2, openssh-server, nginx, iperf3, socat, dnsmasq.
#
# Usage:
#   lab.sh up   [NAME]   build it (default NAME: lab); prints the env to source
#   lab.sh down [NAME]   tear it down, kill its daemons
#   lab.sh env  [NAME]   print shell variables describing it
#   lab.sh lan  [NAME]   add a fourth namespace NAME-l, a LAN host behind the
#                        client (100.64.0.2/24, default route via the client's
#                        100.64.0.1), for router mode (-l 0.0.0.0); prints
#                        LAB_LAN_NS, LAB_LAN_IP, LAB_CLIENT_LAN_IP. `down` removes it.
#   lab.sh deps          apt-get install what it needs
set -euo pipefail

cmd=${1:-}
NAME=${2:-lab}
C=$NAME-c S=$NAME-s T=$NAME-t L=$NAME-l
DIR=${LAB_DIR:-/tmp/$NAME}

need() { command -v "$1" >/dev/null 2>&1 || { echo "lab: missing $1 (run: lab.sh deps)" >&2; exit 2; }; }

env_vars() {
  cat <<EOF
LAB_NAME=$NAME
LAB_DIR=$DIR
LAB_CLIENT_NS=$C
LAB_SERVER_NS=$S
LAB_TARGET_NS=$T
LAB_SERVER_IP=198.51.100.1
LAB_SERVER_IP6=2001:db8:1::1
LAB_CLIENT_IP=198.51.100.2
LAB_TARGET_IP=203.0.113.2
LAB_TARGET_IP6=2001:db8:2::2
LAB_TARGET_NET=203.0.113.0/24
LAB_TARGET_NET6=2001:db8:2::/64
LAB_TARGET_NAME=web.lab.test
LAB_SSH_KEY=$DIR/id_ed25519
LAB_SSH_CONFIG=$DIR/ssh_config
LAB_SSH_CONFIG_STRICT=$DIR/ssh_config_strict
LAB_KNOWN_HOSTS=$DIR/known_hosts
LAB_SSH_USER=root
EOF
}

# wait_tcp NS HOST PORT WHAT: until HOST:PORT accepts inside NS (5 s at most).
wait_tcp() {
  local i
  for i in $(seq 50); do
    ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "lab: $4 did not start listening on $2:$3 in $1" >&2
  return 1
}

up() {
  for t in ip sshd ssh-keygen nginx iperf3 socat dnsmasq; do need "$t"; done
  [ "${#C}" -le 15 ] || { echo "lab: NAME too long for interface names: $NAME" >&2; exit 2; }
  down >/dev/null 2>&1 || true
  # From here on, a failure removes the half-built lab.
  trap 'rc=$?; if [ $rc -ne 0 ]; then echo "lab: up failed, tearing down $NAME" >&2; down >/dev/null 2>&1 || true; fi' EXIT
  mkdir -p "$DIR" /run/sshd
  for ns in $C $S $T; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip link add c0 netns $C type veth peer name s0 netns $S
  ip link add s1 netns $S type veth peer name t0 netns $T
  ip -n $C addr add 198.51.100.2/24 dev c0; ip -n $C -6 addr add 2001:db8:1::2/64 dev c0 nodad
  ip -n $S addr add 198.51.100.1/24 dev s0; ip -n $S -6 addr add 2001:db8:1::1/64 dev s0 nodad
  ip -n $S addr add 203.0.113.1/24 dev s1;  ip -n $S -6 addr add 2001:db8:2::1/64 dev s1 nodad
  ip -n $T addr add 203.0.113.2/24 dev t0;  ip -n $T -6 addr add 2001:db8:2::2/64 dev t0 nodad
  for pair in "$C c0" "$S s0" "$S s1" "$T t0"; do set -- $pair; ip -n "$1" link set "$2" up; done
  # The client routes everything towards the server, which refuses to forward.
  ip -n $C route add default via 198.51.100.1
  ip -n $C -6 route add default via 2001:db8:1::1
  ip -n $T route add default via 203.0.113.1
  ip -n $T -6 route add default via 2001:db8:2::1
  ip netns exec $S sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0

  # Per-namespace resolv.conf (ip netns exec bind-mounts /etc/netns/NS/*).
  mkdir -p /etc/netns/$C /etc/netns/$S /etc/netns/$T
  echo "nameserver 192.0.2.53" >/etc/netns/$C/resolv.conf
  echo "nameserver 203.0.113.2" >/etc/netns/$S/resolv.conf
  echo "nameserver 127.0.0.1" >/etc/netns/$T/resolv.conf
  # Per-namespace hosts files too: the server knows names the client does not.
  printf '127.0.0.1 localhost\n::1 localhost\n' >/etc/netns/$C/hosts
  printf '127.0.0.1 localhost\n::1 localhost\n203.0.113.2 web.lab.test web\n203.0.113.7 printer.lab.test printer\n' >/etc/netns/$S/hosts
  printf '127.0.0.1 localhost\n::1 localhost\n' >/etc/netns/$T/hosts

  # sshd on the server, key-only root login, everything under $DIR.
  ssh-keygen -q -t ed25519 -N '' -f "$DIR/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -f "$DIR/id_ed25519"
  cp "$DIR/id_ed25519.pub" "$DIR/authorized_keys"
  # The server's host key under both of its addresses, for host-key checks.
  awk '{ print "198.51.100.1 " $1 " " $2; print "2001:db8:1::1 " $1 " " $2 }' \
    "$DIR/ssh_host_ed25519_key.pub" >"$DIR/known_hosts"
  cat >"$DIR/sshd_config" <<EOF
ListenAddress 198.51.100.1
ListenAddress 2001:db8:1::1
Port 22
HostKey $DIR/ssh_host_ed25519_key
AuthorizedKeysFile $DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
AllowTcpForwarding yes
PidFile $DIR/sshd.pid
MaxStartups 100:30:200
MaxSessions 100
Subsystem sftp internal-sftp
# Sessions run root's shell start-up (bash reads ~/.bashrc under sshd). Where
# that runs \`pyenv rehash\`, a rehash killed half-way (the reconnect tests kill
# sshd's sessions) leaves a lock every later session waited 60 s on.
SetEnv PYENV_REHASH_TIMEOUT=0
EOF
  ip netns exec $S /usr/sbin/sshd -f "$DIR/sshd_config" </dev/null >/dev/null
  cat >"$DIR/ssh_config" <<EOF
Host *
  IdentityFile $DIR/id_ed25519
  User root
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
EOF
  cat >"$DIR/ssh_config_strict" <<EOF
Host *
  IdentityFile $DIR/id_ed25519
  User root
  StrictHostKeyChecking yes
  UserKnownHostsFile $DIR/known_hosts
  GlobalKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
EOF

  # Target services: nginx serves / (a short greeting) and /bytes/SIZE for
  # SIZE in 1k 64k 1m 100m, over IPv4 and IPv6.
  mkdir -p "$DIR/www/bytes" "$DIR/nginx"
  echo "hello from lab" >"$DIR/www/index.html"
  for sz in 1k 64k 1m 100m; do
    head -c "$(numfmt --from=iec "${sz^^}")" /dev/zero | tr '\0' x >"$DIR/www/bytes/$sz"
  done
  cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
pid $DIR/nginx.pid;
error_log $DIR/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $DIR/nginx; proxy_temp_path $DIR/nginx;
  fastcgi_temp_path $DIR/nginx; uwsgi_temp_path $DIR/nginx; scgi_temp_path $DIR/nginx;
  server { listen 80; listen [::]:80; root $DIR/www; default_type text/plain; }
}
EOF
  # Daemons get no inherited stdio, so a caller reading our output is not
  # kept waiting by them.
  ip netns exec $T nginx -c "$DIR/nginx.conf" </dev/null >/dev/null 2>>"$DIR/nginx/error.log"
  ip netns exec $T iperf3 -s -D -I "$DIR/iperf3.pid" </dev/null >/dev/null 2>&1
  ip netns exec $T socat UDP6-RECVFROM:7,fork,ipv6only=0 EXEC:cat </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/udpecho.pid"
  ip netns exec $T socat TCP6-LISTEN:7,fork,ipv6only=0,reuseaddr EXEC:cat </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/tcpecho.pid"
  ip netns exec $T dnsmasq --no-resolv --no-hosts --no-daemon --listen-address=203.0.113.2,2001:db8:2::2 \
    --bind-interfaces --pid-file="$DIR/dnsmasq.pid" \
    --address=/web.lab.test/203.0.113.2 --address=/web.lab.test/2001:db8:2::2 \
    --address=/db.lab.test/203.0.113.5 --log-facility=- </dev/null >"$DIR/dnsmasq.log" 2>&1 &
  wait_tcp $S 198.51.100.1 22 sshd
  wait_tcp $S 2001:db8:1::1 22 sshd
  wait_tcp $T 127.0.0.1 80 nginx
  wait_tcp $T 127.0.0.1 5201 iperf3
  wait_tcp $T 127.0.0.1 7 "TCP echo"
  wait_tcp $T 203.0.113.2 53 dnsmasq
  env_vars >"$DIR/env"
  env_vars
}

# The opt-in LAN behind the client: its traffic reaches the target network
# only if the client captures it in PREROUTING (router mode).
lan() {
  [ -e "/run/netns/$C" ] || { echo "lab: $NAME is not up" >&2; exit 2; }
  ip netns add "$L"
  ip -n "$L" link set lo up
  ip link add c1 netns "$C" type veth peer name l0 netns "$L"
  ip -n "$C" addr add 100.64.0.1/24 dev c1
  ip -n "$L" addr add 100.64.0.2/24 dev l0
  ip -n "$C" link set c1 up
  ip -n "$L" link set l0 up
  ip -n "$L" route add default via 100.64.0.1
  mkdir -p "/etc/netns/$L"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"/etc/netns/$L/hosts"
  echo "nameserver 192.0.2.53" >"/etc/netns/$L/resolv.conf"
  printf 'LAB_LAN_NS=%s\nLAB_LAN_IP=100.64.0.2\nLAB_CLIENT_LAN_IP=100.64.0.1\n' "$L"
}

down() {
  for f in sshd nginx udpecho tcpecho iperf3 dnsmasq; do
    if [ -f "$DIR/$f.pid" ]; then kill "$(cat "$DIR/$f.pid")" 2>/dev/null || true; fi
  done
  # Anything still running inside the namespaces was started for the lab.
  for ns in $C $S $T $L; do
    if [ -e "/run/netns/$ns" ]; then
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
    rm -rf "/etc/netns/$ns"
  done
  rm -rf "$DIR"
  return 0
}

case "$cmd" in
  up) up ;;
  down) down ;;
  env) env_vars ;;
  lan) lan ;;
  deps) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 openssh-server openssh-client \
          nginx-light iperf3 socat dnsmasq iptables nftables curl wrk >/dev/null ;;
  *) sed -n '2,35p' "$0"; exit 2 ;;
esac
