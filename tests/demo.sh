#!/usr/bin/env bash
# The origin scenario (ipvs-shorewall-2009), end to end, in network namespaces
# this script creates and removes: a client on the internet side, the head
# node running `headnode run` with fixtures/origin/headnode.toml, and node1 and
# node2 (the how-to's MACs) on the private LAN, which take their addresses
# from headnode with a real DHCP client and serve NODE1 / NODE2 on :8000.
# Nothing outside these namespaces is touched. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) -eq 0 ]] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }

tag="hn-demo-$$"
NET="$tag-net" HEAD="$tag-head" LAN="$tag-lan" N1="$tag-node1" N2="$tag-node2"
work=$(mktemp -d /tmp/headnode-demo.XXXXXX)
pids=()

cleanup() {
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for ns in "$NET" "$HEAD" "$LAN" "$N1" "$N2"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

step "setting up (packages, build)"
bash tests/setup.sh
cargo build --quiet
HN=$PWD/target/debug/headnode
CFG=$PWD/fixtures/origin/headnode.toml

step "creating namespaces: net client, head node, LAN switch, node1, node2"
for ns in "$NET" "$HEAD" "$LAN" "$N1" "$N2"; do
    ip netns add "$ns"
    # `ip netns exec` mounts this over /etc/resolv.conf: nothing in the
    # namespace can write the host's.
    mkdir -p "/etc/netns/$ns" && : >"/etc/netns/$ns/resolv.conf"
    in_ns "$ns" ip link set lo up
done
# internet side: client (the how-to's gateway) 203.0.113.253 <-> head eth1 203.0.113.210
ip link add "d$$a" type veth peer name "d$$b"
ip link set "d$$a" netns "$NET"; ip link set "d$$b" netns "$HEAD"
in_ns "$NET" ip link set "d$$a" name eth0
in_ns "$HEAD" ip link set "d$$b" name eth1
in_ns "$NET" ip addr add 203.0.113.253/24 dev eth0
in_ns "$HEAD" ip addr add 203.0.113.210/24 dev eth1
in_ns "$NET" ip link set eth0 up
in_ns "$HEAD" ip link set eth1 up
in_ns "$HEAD" ip route add default via 203.0.113.253
# private LAN: a bridge in the switch namespace, head eth0 192.168.1.254
in_ns "$LAN" ip link add br0 type bridge
in_ns "$LAN" ip link set br0 up
i=0
for pair in "$HEAD:" "$N1:00:12:34:56:78:91" "$N2:00:12:34:56:78:92"; do
    ns=${pair%%:*} mac=${pair#*:}
    ip link add "d$$l$i" type veth peer name "d$$p$i"
    ip link set "d$$l$i" netns "$ns"; ip link set "d$$p$i" netns "$LAN"
    in_ns "$ns" ip link set "d$$l$i" name eth0
    [[ -n $mac ]] && in_ns "$ns" ip link set eth0 address "$mac"
    in_ns "$ns" ip link set eth0 up
    in_ns "$LAN" ip link set "d$$p$i" master br0 up
    i=$((i + 1))
done
in_ns "$HEAD" ip addr add 192.168.1.254/24 dev eth0

step "headnode check --explain"
"$HN" -c "$CFG" check --explain

step "headnode plan (what run will apply)"
in_ns "$HEAD" "$HN" -c "$CFG" plan

step "starting headnode run on the head node"
export HEADNODE_STATE_DIR=$work/state HEADNODE_RUN_DIR=$work/run
in_ns "$HEAD" env HEADNODE_STATE_DIR="$HEADNODE_STATE_DIR" HEADNODE_RUN_DIR="$HEADNODE_RUN_DIR" \
    "$HN" -c "$CFG" run >"$work/headnode.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    grep -q "ready" "$work/headnode.log" && break
    sleep 0.2
done
sed 's/^/  | /' "$work/headnode.log"

step "node1 and node2 ask for addresses with busybox udhcpc"
for ns in "$N1" "$N2"; do
    in_ns "$ns" env HEADNODE_LEASE_ENV="$work/$ns.lease" \
        busybox udhcpc -i eth0 -n -q -t 5 -T 1 -s "$PWD/tests/udhcpc.script" 2>&1 | sed 's/^/  | /'
    echo "  $ns: $(in_ns "$ns" ip -4 -br addr show dev eth0 | awk '{print $3}'), default via $(in_ns "$ns" ip route show default | awk '{print $3}')"
    echo "    the server sent: $(tr '\n' ' ' <"$work/$ns.lease")"
done

step "headnode leases"
in_ns "$HEAD" env HEADNODE_RUN_DIR="$HEADNODE_RUN_DIR" "$HN" -c "$CFG" leases

step "node1 and node2 serve NODE1 / NODE2 on :8000"
for n in 1 2; do
    mkdir -p "$work/www$n"; echo "NODE$n" >"$work/www$n/index.html"
    ns_var="N$n"
    in_ns "${!ns_var}" busybox httpd -f -p 8000 -h "$work/www$n" &
    pids+=($!)
done
sleep 1

step "six requests from the internet to 203.0.113.210:8000"
for r in 1 2 3 4 5 6; do
    printf '  request %d -> %s\n' "$r" "$(in_ns "$NET" curl -s -m 3 http://203.0.113.210:8000/ || echo FAILED)"
done

step "node1 reaches the internet host, masqueraded as the head's public address"
in_ns "$NET" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("203.0.113.253", 9000)); s.listen(1); s.settimeout(10)
c, a = s.accept(); c.sendall(("you came from %s\n" % a[0]).encode()); c.close()' &
pids+=($!)
sleep 0.5
echo "  $(in_ns "$N1" curl -s -m 3 telnet://203.0.113.253:9000 </dev/null || echo FAILED)"

step "a port the firewall does not open: 203.0.113.210:22 from the internet"
if in_ns "$NET" curl -s -m 2 telnet://203.0.113.210:22 </dev/null; then
    echo "  OPEN (unexpected)"
else
    echo "  blocked, as it should be"
fi

step "headnode status"
# Its exit code says whether all is well; the demo goes on either way.
in_ns "$HEAD" env HEADNODE_RUN_DIR="$HEADNODE_RUN_DIR" "$HN" -c "$CFG" status || echo "  (status exited $?)"

step "done; cleaning up"
