#!/bin/sh
# Two head nodes on a real IPVS kernel, inside the test VM (tests/vm/run.sh
# ha). Namespaces: net (the client, and a web server for the nodes' way
# out), pub (the public segment, a bridge), lan (the private segment, a
# bridge), head1 and head2 (each runs headnode and keepalived), node1 and
# node2 (DHCP clients serving NODEn on :8000 and an echo on :9000), pc1..pc4
# (pool clients). Prints the measured takeovers and "N passed, M failed".
set -u
ip() { /sbin/ip "$@"; }
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # check "what" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
has() { echo "$1" | grep -Eq -- "$2"; }
VIP=203.0.113.210

# --- topology ----------------------------------------------------------------
for ns in net pub lan head1 head2 node1 node2 pc1 pc2 pc3 pc4; do
    ip netns add $ns
    in_ns $ns ip link set lo up
done
in_ns pub ip link add br0 type bridge
in_ns lan ip link add br0 type bridge
in_ns pub ip link set br0 up
in_ns lan ip link set br0 up
i=0
plug() { # plug NS SEGMENT NAME [MAC]: a veth from NS (as NAME) to SEGMENT's bridge
    ip link add v$i type veth peer name b$i
    ip link set v$i netns $1
    ip link set b$i netns $2
    in_ns $2 ip link set b$i master br0 up
    in_ns $1 ip link set v$i name $3
    [ -n "${4:-}" ] && in_ns $1 ip link set $3 address $4
    in_ns $1 ip link set $3 up
    i=$((i + 1))
}
plug net pub eth0
in_ns net ip addr add 203.0.113.1/24 dev eth0
for n in 1 2; do
    plug head$n pub eth1
    plug head$n lan eth0
    in_ns head$n ip addr add 203.0.113.21$n/24 dev eth1
    in_ns head$n ip addr add 192.168.1.25$((n + 1))/24 dev eth0
    in_ns head$n ip route add default via 203.0.113.1
done
plug node1 lan eth0 00:12:34:56:78:91
plug node2 lan eth0 00:12:34:56:78:92
for n in 1 2 3 4; do plug pc$n lan eth0 02:00:00:00:0a:0$n; done

# What the nodes serve, and the web server out on the net side.
for n in 1 2; do
    mkdir -p /srv/node$n
    echo NODE$n > /srv/node$n/id
    /sbin/ip netns exec node$n httpd -f -p 8000 -h /srv/node$n &
    /sbin/ip netns exec node$n /test/ha_tool echo 9000 &
done
mkdir -p /srv/net && echo OUTSIDE > /srv/net/id
/sbin/ip netns exec net httpd -f -p 8080 -h /srv/net &

# --- the two head nodes --------------------------------------------------------
config() { # config N ROLE OWN-LAN PEER
    cat <<EOF
[interfaces.public]
name = "eth1"
address = "203.0.113.21$1/24"

[interfaces.private]
name = "eth0"
address = "$3/24"

[dhcp]
lease_time = "1h"
lease_file = "/run/h$1/leases"

[dhcp.pool]
start = "192.168.1.200"
end = "192.168.1.203"

[[host]]
name = "node1"
mac = "00:12:34:56:78:91"
address = "192.168.1.101"

[[host]]
name = "node2"
mac = "00:12:34:56:78:92"
address = "192.168.1.102"

[[service]]
name = "web"
port = 8000
real = ["node1:8000", "node2:8000"]
scheduler = "rr"
health = { check = "tcp", interval = "1s", timeout = "1s", rise = 1, fall = 2 }

[[service]]
name = "echo"
port = 9000
real = ["node1:9000"]

[ha]
role = "$2"
peer = "$4"
public_address = "$VIP/24"
lan_address = "192.168.1.254/24"
keepalived_config = "/run/h$1/keepalived-headnode.conf"
EOF
}
mkdir -p /run/h1 /run/h2
config 1 primary 192.168.1.252 192.168.1.253 >/run/h1/headnode.toml
config 2 secondary 192.168.1.253 192.168.1.252 >/run/h2/headnode.toml
for n in 1 2; do
    echo "include /run/h$n/keepalived-headnode.conf" >/run/h$n/keepalived.conf
done
hn() { # hn N ARGS: headnode as head N
    local n=$1; shift
    ip netns exec head$n env HEADNODE_STATE_DIR=/run/h$n/state HEADNODE_RUN_DIR=/run/h$n/run \
        headnode -c /run/h$n/headnode.toml "$@"
}
start_head() { # the daemon, then keepalived once the daemon wrote its file
    local n=$1 k
    # /sbin/ip itself: a shell function in the background would be a
    # subshell, and $! its pid instead of the daemon's.
    /sbin/ip netns exec head$n env HEADNODE_STATE_DIR=/run/h$n/state HEADNODE_RUN_DIR=/run/h$n/run \
        headnode -c /run/h$n/headnode.toml run >>/run/h$n/headnode.log 2>&1 &
    echo $! >/run/h$n/headnode.pid
    for k in $(seq 1 100); do
        [ -S /run/h$n/run/control.sock ] && [ -s /run/h$n/keepalived-headnode.conf ] && break
        sleep 0.2
    done
    /sbin/ip netns exec head$n keepalived -n -l -P -f /run/h$n/keepalived.conf \
        -p /run/h$n/keepalived.pid -r /run/h$n/vrrp.pid >>/run/h$n/keepalived.log 2>&1 &
    echo $! >/run/h$n/keepalived.launch.pid
}
stop_head() { # keepalived stopped (it gives up the addresses), headnode killed
    local n=$1 k
    kill -TERM "$(cat /run/h$n/keepalived.launch.pid)" 2>/dev/null
    kill -KILL "$(cat /run/h$n/headnode.pid)" 2>/dev/null
    for k in $(seq 1 50); do
        kill -0 "$(cat /run/h$n/keepalived.launch.pid)" 2>/dev/null \
            || kill -0 "$(cat /run/h$n/vrrp.pid 2>/dev/null)" 2>/dev/null || break
        sleep 0.2
    done
}
state_of() { # the HA state head N's daemon reports ("" when it does not answer)
    hn $1 status 2>/dev/null | sed -n 's/^ha: \([a-z]*\) .*/\1/p'
}
wait_state() { # wait_state N STATE SECONDS
    local k
    for k in $(seq 1 $(($3 * 5))); do
        [ "$(state_of $1)" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}
holds_vip() { in_ns head$1 ip -4 addr show dev eth0 | grep -q '192.168.1.254/'; }

check "head1's config passes check with head2's as its peer (keepalived -t included)" sh -c \
    "HEADNODE_STATE_DIR=/run/h1/state /sbin/ip netns exec head1 headnode -c /run/h1/headnode.toml check --peer /run/h2/headnode.toml >/run/h1/check.out 2>&1"
cat /run/h1/check.out
start_head 1
start_head 2
check "head1 (primary) becomes master" wait_state 1 master 30
check "head2 (secondary) is backup" wait_state 2 backup 10
check "head1 holds the virtual addresses" holds_vip 1
s1=$(hn 1 status); echo "$s1"
check "head1 runs the IPVS master sync daemon" has "$s1" 'ipvs: master sync daemon on eth0 \(syncid 51\)'
check "head2 runs the IPVS backup sync daemon" has "$(hn 2 status)" 'ipvs: backup sync daemon on eth0 \(syncid 51\)'
check "ipvsadm shows the sync daemon on head1" has "$(in_ns head1 ipvsadm -L --daemon)" 'master sync daemon'

# --- leases --------------------------------------------------------------------
lease() { # lease NS: udhcpc until bound; prints the address
    in_ns $1 udhcpc -i eth0 -n -q -t 5 -T 1 -s /test/udhcpc.script >/dev/null 2>&1
    in_ns $1 ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1
}
check "node1 gets its reserved address" [ "$(lease node1)" = 192.168.1.101 ]
check "node2 gets its reserved address" [ "$(lease node2)" = 192.168.1.102 ]
check "node1's default route is the virtual LAN address" has "$(in_ns node1 ip route)" 'default via 192.168.1.254'
p1=$(lease pc1); p2=$(lease pc2)
echo "pool clients: pc1 $p1, pc2 $p2"
check "pool clients get two different pool addresses" sh -c "case '$p1 $p2' in '192.168.1.20'[0-3]' 192.168.1.20'[0-3]) [ '$p1' != '$p2' ] ;; *) false ;; esac"
get() { printf 'GET /id HTTP/1.0\r\n\r\n' | in_ns net timeout 5 nc $VIP 8000 | tail -1; }
check "the balancer answers on the virtual address" has "$(get) $(get)" 'NODE'

# (nc: busybox's static wget crashes.)
outside() {
    printf 'GET /id HTTP/1.0\r\n\r\n' | in_ns node1 timeout 5 nc 203.0.113.1 8080 | grep -q OUTSIDE
}
check "node1 reaches the net side through the virtual gateway" outside

# --- takeovers -------------------------------------------------------------------
# measure NAME SECONDS ACTION...: the client runs SECONDS; ACTION runs 4 s in.
measure() {
    local name=$1 secs=$2; shift 2
    in_ns net /test/ha_tool client $VIP $secs >/run/client-$name.out 2>&1 &
    local client=$!
    sleep 4
    "$@"
    wait $client
    cat /run/client-$name.out
    outage=$(sed -n 's/^REQUESTS .*longest_outage_ms=\([0-9]*\)$/\1/p' /run/client-$name.out)
    failed=$(sed -n 's/^REQUESTS .*failed=\([0-9]*\) .*/\1/p' /run/client-$name.out)
    survived=$(sed -n 's/^LONG .*survived=\([a-z]*\) .*/\1/p' /run/client-$name.out)
    echo "TAKEOVER $name: longest outage ${outage:-?} ms, ${failed:-?} failed requests, long connection survived: ${survived:-?}"
}
measure kill 16 stop_head 1
check "kill: head2 took over" wait_state 2 master 5
check "kill: new requests answered within 3 s" [ "${outage:-99999}" -lt 3000 ]
check "kill: the long-lived connection survived" [ "$survived" = yes ]
check "kill: node1's default route still works" outside
check "kill: head2 runs the master sync daemon" has "$(hn 2 status)" 'ipvs: master sync daemon'

start_head 1
check "head1 comes back as backup (no second takeover)" wait_state 1 backup 30
measure back 8 true
check "after head1 came back no request failed" [ "${failed:-1}" -eq 0 ]
check "after head1 came back the long-lived connection is fine" [ "$survived" = yes ]

links() { in_ns head2 ip link set eth0 $1; in_ns head2 ip link set eth1 $1; }
measure links 16 links down
check "links down: head1 took over" wait_state 1 master 5
check "links down: new requests answered within 3 s" [ "${outage:-99999}" -lt 3000 ]
check "links down: the long-lived connection survived" [ "$survived" = yes ]
check "links down: node1's default route still works" outside
links up
check "head2 comes back as backup" wait_state 2 backup 30
measure up 8 true
check "after head2's links came back no request failed" [ "${failed:-1}" -eq 0 ]

# --- split brain -------------------------------------------------------------------
# The two heads no longer hear each other (the nodes still hear both).
for n in 1 2; do
    peer=192.168.1.25$((4 - n))
    in_ns head$n nft -f - <<EOF
table ip splitbrain {
    chain in { type filter hook input priority -300; ip saddr $peer drop; }
}
EOF
done
check "split brain: head2 becomes master too" wait_state 2 master 10
check "split brain: head1 stays master" [ "$(state_of 1)" = master ]
p3=$(lease pc3); p4=$(lease pc4)
echo "split brain pool clients: pc3 $p3, pc4 $p4"
check "split brain: pool clients get addresses" sh -c "[ -n '$p3' ] && [ -n '$p4' ]"
twice() { # an address bound to two MACs across both heads' lease lists
    { hn 1 leases; hn 2 leases; } | awk '$1 ~ /^192\.168\.1\.2/ && $5 == "bound" {print $1, $2}' | sort -u \
        | awk '{n[$1]++} END {for (a in n) if (n[a] > 1) {print "leased twice:", a; bad = 1} exit bad}'
}
hn 1 leases; hn 2 leases
check "split brain: no address is leased twice" twice
for n in 1 2; do in_ns head$n nft delete table ip splitbrain; done
check "split brain healed: one master again" sh -c \
    'for k in $(seq 1 50); do a=$(/sbin/ip netns exec head1 ip -4 addr show dev eth0 | grep -c 192.168.1.254/); b=$(/sbin/ip netns exec head2 ip -4 addr show dev eth0 | grep -c 192.168.1.254/); [ $((a + b)) -eq 1 ] && exit 0; sleep 0.2; done; exit 1'

for n in 1 2; do
    echo "--- head$n keepalived log (last lines)"; tail -5 /run/h$n/keepalived.log
    echo "--- head$n headnode log (HA lines)"; grep -a 'HA' /run/h$n/headnode.log | tail -8
done
echo "$pass passed, $fail failed"
