#!/bin/sh
# The origin scenario (ipvs-shorewall-2009) on a real IPVS kernel, inside the
# test VM (tests/vm/run.sh). Network namespaces: net (the client on the
# internet side), head (runs headnode), lan (a bridge), node1 and node2
# (serving NODE1 / NODE2 over HTTP on :8000). Prints "N passed, M failed".
set -u
# busybox sh runs its own applets first; iproute2 is the one that does netns and veth.
ip() { /sbin/ip "$@"; }
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() { # check "what" command...
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
PUBLIC=203.0.113.210
CFG=/test/origin.toml
export HEADNODE_STATE_DIR=/run/headnode-state
hn() { in_ns head headnode -c "$CFG" "$@"; }

# --- topology --------------------------------------------------------------
for ns in net head lan node1 node2; do
    ip netns add $ns
    in_ns $ns ip link set lo up
done
ip link add pub0 type veth peer name pub1
ip link set pub0 netns net; ip link set pub1 netns head
in_ns net ip link set pub0 name eth0
in_ns head ip link set pub1 name eth1
in_ns net ip addr add 203.0.113.1/24 dev eth0
in_ns head ip addr add $PUBLIC/24 dev eth1
in_ns net ip link set eth0 up
in_ns head ip link set eth1 up
in_ns lan ip link add br0 type bridge
in_ns lan ip link set br0 up
i=0
for pair in head:192.168.1.254 node1:192.168.1.101 node2:192.168.1.102; do
    ns=${pair%%:*} addr=${pair#*:}
    ip link add l$i type veth peer name p$i
    ip link set l$i netns $ns; ip link set p$i netns lan
    in_ns lan ip link set p$i master br0 up
    in_ns $ns ip link set l$i name eth0
    case $ns in  # the how-to's MACs, which its dhcpd.conf (and origin.toml) reserve
    node1) in_ns $ns ip link set eth0 address 00:12:34:56:78:91 ;;
    node2) in_ns $ns ip link set eth0 address 00:12:34:56:78:92 ;;
    esac
    in_ns $ns ip addr add $addr/24 dev eth0
    in_ns $ns ip link set eth0 up
    [ $ns = head ] || in_ns $ns ip route add default via 192.168.1.254
    i=$((i + 1))
done
in_ns head sysctl -qw net.ipv4.ip_forward=1

# headnode's own ruleset (apply) marks the packets and judges IPVS NAT
# replies before its invalid drop. This extra table is the strict form of the
# shorewall sample's invalid-state drop, which passes NAT replies only when
# IPVS hands them to conntrack (net.ipv4.vs.conntrack = 1).
in_ns head nft -f - <<'NFT'
table inet vmtest {
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        ct state invalid drop
    }
}
NFT

serve() { # serve NODE<n> on :8000 in node<n>; the pid goes to /run/httpd<n>.pid
    # /sbin/ip directly: a shell function in the background would be a
    # subshell, and $! its pid instead of the server's.
    /sbin/ip netns exec node$1 httpd -f -p 8000 -h /srv/node$1 &
    echo $! > /run/httpd$1.pid
}
for n in 1 2; do
    mkdir -p /srv/node$n
    echo NODE$n > /srv/node$n/id
    serve $n
done
sleep 1

get() { # one request from the client to the balancer; prints the body
    printf 'GET /id HTTP/1.0\r\n\r\n' | in_ns net timeout 5 nc $PUBLIC 8000 | tail -1
}

# --- apply -----------------------------------------------------------------
out=$(hn apply 2>&1); rc=$?
echo "$out"
check "headnode apply succeeds" [ $rc -eq 0 ]
check "apply loaded headnode's firewall" sh -c "/sbin/ip netns exec head nft list table inet headnode >/dev/null"
table=$(in_ns head ipvsadm -Ln)
saved=$(in_ns head ipvsadm -Sn)
echo "$table"
has() { echo "$1" | grep -Eq -- "$2"; }
check "ipvsadm -Ln shows FWM 1 rr" has "$table" '^FWM  1 rr'
check "node1 is a masq real server" has "$table" '-> 192.168.1.101:8000 +Masq +1 '
check "node2 is a masq real server" has "$table" '-> 192.168.1.102:8000 +Masq +1 '
check "net.ipv4.vs.conntrack is 1" [ "$(in_ns head sysctl -n net.ipv4.vs.conntrack)" = 1 ]

# --- traffic -----------------------------------------------------------------
seq6=""
for i in 1 2 3 4 5 6; do seq6="$seq6 $(get)"; done
echo "six requests:$seq6"
alternates() {
    set -- $seq6
    [ $# -eq 6 ] || return 1
    prev=""
    for r in "$@"; do
        case $r in NODE1 | NODE2) ;; *) return 1 ;; esac
        [ "$r" != "$prev" ] || return 1
        prev=$r
    done
}
check "six requests alternate NODE1/NODE2" alternates
sleep 1
half_closed() { # no connection on the nodes stuck half closed after the client is done
    case $seq6 in *NODE*) ;; *) return 1 ;; esac  # (and there was traffic)
    for n in node1 node2; do
        in_ns $n netstat -tn | grep ':8000 ' | grep -Eq 'CLOSE_WAIT|FIN_WAIT|ESTABLISHED|LAST_ACK' && return 1
    done
    return 0
}
check "connections through the balancer closed cleanly" half_closed

# Why headnode sets net.ipv4.vs.conntrack: without it the replies IPVS
# masquerades are not tracked, and the invalid-state drop eats them.
in_ns head sysctl -qw net.ipv4.vs.conntrack=0
r=$(printf 'GET /id HTTP/1.0\r\n\r\n' | in_ns net timeout 3 nc $PUBLIC 8000 | tail -1)
check "without vs.conntrack the firewall breaks balanced traffic (got '$r')" [ -z "$r" ]
out=$(hn apply 2>&1); echo "$out"
check "apply sets vs.conntrack back" has "$out" '^sysctl net.ipv4.vs.conntrack = 1$'

# --- idempotence and drift ---------------------------------------------------
out=$(hn apply 2>&1); echo "$out"
check "second apply changes nothing" has "$out" '^ipvs: no changes'
check "ipvsadm -C empties the table" sh -c "/sbin/ip netns exec head ipvsadm -C && [ -z \"\$(/sbin/ip netns exec head ipvsadm -Sn)\" ]"
out=$(hn apply 2>&1); echo "$out"
check "apply after ipvsadm -C restores the table" [ -n "$saved" -a "$(in_ns head ipvsadm -Sn)" = "$saved" ]
in_ns head ipvsadm -e -f 1 -r 192.168.1.102:8000 -m -w 5
in_ns head ipvsadm -A -t 198.51.100.9:80 -s wlc
out=$(hn apply 2>&1); echo "$out"
check "a weight changed by hand is set back" has "$out" '^ipvsadm -e -f 1 -r 192.168.1.102:8000 -m -w 1$'
check "a service headnode did not create is left alone" has "$(in_ns head ipvsadm -Ln)" '198.51.100.9:80'
seq6=""
for i in 1 2 3 4 5 6; do seq6="$seq6 $(get)"; done
echo "six requests:$seq6"
check "requests alternate again after the repairs" alternates

# --- health checks through the daemon ------------------------------------------
# origin.toml: health = { check = "tcp", interval = "2s", timeout = "1s", rise = 2, fall = 2 }
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
weight_of() { in_ns head ipvsadm -Ln | awk -v r="$1:8000" '$2 == r { print $4 }'; }
wait_weight() { # wait_weight ADDR WEIGHT LIMIT_MS: prints the milliseconds it took
    local t0 limit; t0=$(now_ms); limit=$3
    while [ "$(weight_of $1)" != "$2" ]; do
        [ $(($(now_ms) - t0)) -lt $limit ] || { echo -1; return 1; }
        sleep 0.1
    done
    echo $(($(now_ms) - t0))
}
/sbin/ip netns exec head env HEADNODE_RUN_DIR=/run/hn headnode -c "$CFG" run > /run/daemon.log 2>&1 &
daemon=$!
sleep 3
check "the daemon is running" kill -0 $daemon
kill "$(cat /run/httpd2.pid)"
# The first failing probe comes at most one interval after the stop, the
# fall-th (2nd) one interval later: drained within interval x fall = 4s,
# plus 1s for the reconcile under TCG emulation.
ms=$(wait_weight 192.168.1.102 0 15000)
drained=$ms
echo "node2 drained after $ms ms"
check "stopping node2's server drains it within interval x fall ($ms ms)" [ "$ms" -ge 0 -a "$ms" -le 5000 ]
check "node1 keeps its weight" [ "$(weight_of 192.168.1.101)" = 1 ]
seq6=""
for i in 1 2 3 4 5 6; do seq6="$seq6 $(get)"; done
echo "six requests:$seq6"
check "with node2 down all requests go to node1" [ "$seq6" = " NODE1 NODE1 NODE1 NODE1 NODE1 NODE1" ]
serve 2
ms=$(wait_weight 192.168.1.102 1 15000)
echo "node2 restored after $ms ms"
check "restarting node2's server restores it ($ms ms)" [ "$drained" -ge 0 -a "$ms" -ge 0 ]
seq6=""
for i in 1 2 3 4 5 6; do seq6="$seq6 $(get)"; done
echo "six requests:$seq6"
check "requests alternate again once node2 is back" alternates

# --- all reals down ---------------------------------------------------------
# Both nodes drop off the LAN (packets to them go nowhere, so a refusal can
# only come from IPVS): new connections are refused at once, and the first
# node back is restored after one passing check, not rise x interval.
link() { # link NODE up|down (a downed link loses the default route)
    in_ns node$1 ip link set eth0 $2
    [ $2 = down ] || in_ns node$1 ip route replace default via 192.168.1.254
}
link 1 down; link 2 down
ms1=$(wait_weight 192.168.1.101 0 15000); ms2=$(wait_weight 192.168.1.102 0 15000)
check "both nodes off the LAN: both drained ($ms1 ms, $ms2 ms)" [ "$ms1" -ge 0 -a "$ms2" -ge 0 ]
t0=$(now_ms)
in_ns net timeout 5 nc $PUBLIC 8000 </dev/null >/dev/null 2>&1; rc=$?
ms=$(($(now_ms) - t0))
echo "connection attempt with every real down: exit $rc after $ms ms"
check "with every real down a new connection is refused at once ($ms ms)" [ $rc -ne 0 -a $rc -ne 124 -a $ms -lt 3000 ]
link 1 up
ms=$(wait_weight 192.168.1.101 1 15000)
echo "node1, the first back, restored after $ms ms"
check "the first node back is restored after one check ($ms ms)" grep -q 'restoring at once' /run/daemon.log
check "the first node back serves" [ "$(get)" = NODE1 ]
check "node2, still off the LAN, stays drained" [ "$(weight_of 192.168.1.102)" = 0 ]
link 2 up
ms=$(wait_weight 192.168.1.102 1 15000)
check "node2 back while node1 serves is restored after rise checks ($ms ms)" [ "$ms" -ge 0 ]

# --- the rest of the origin scenario: DHCP, masquerade, a closed port -------
# node1 gives up its address and asks the running daemon for its reservation.
in_ns node1 ip addr flush dev eth0
out=$(in_ns node1 udhcpc -i eth0 -n -q -t 5 -T 1 -s /test/udhcpc.script 2>&1)
echo "$out"
check "node1 gets its reservation from headnode run" has "$out" 'lease of 192.168.1.101 obtained'
check "node1's default route is the head node" has "$(in_ns node1 ip route show default)" 'via 192.168.1.254'
check "headnode leases shows node1 bound" has "$(hn leases)" '192\.168\.1\.101 .*node1 +bound'
# The net host has no route to the LAN: only masquerading gets an answer back.
mkdir -p /srv/net/cgi-bin
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n' > /srv/net/cgi-bin/ip
chmod +x /srv/net/cgi-bin/ip
/sbin/ip netns exec net httpd -f -p 80 -h /srv/net &
netweb=$!
sleep 0.5
src=$(printf 'GET /cgi-bin/ip HTTP/1.0\r\n\r\n' | in_ns node1 timeout 5 nc 203.0.113.1 80 | tail -1)
src=${src#\[::ffff:} src=${src%]}  # httpd listens on IPv6 and shows v4 peers mapped
check "node1 reaches the net host masqueraded as $PUBLIC (it saw '$src')" [ "$src" = "$PUBLIC" ]
kill $netweb; wait $netweb 2>/dev/null
# Something listens on the head's tcp 22: the LAN may reach it (the shorewall
# sample's SSH from loc), the internet may not.
/sbin/ip netns exec head nc -ll -p 22 -e echo hello &
sshd=$!
sleep 0.3
r=$(echo | in_ns node2 timeout 3 nc 192.168.1.254 22)
check "tcp 22 on the head answers the LAN" [ "$r" = hello ]
r=$(echo | in_ns net timeout 3 nc $PUBLIC 22)
check "tcp 22 on the public address is closed to the internet" [ -z "$r" ]
kill $sshd; wait $sshd 2>/dev/null

kill $daemon; wait $daemon 2>/dev/null
grep -E 'health|ipvs' /run/daemon.log
check "the daemon logged the state changes" grep -q 'health: down' /run/daemon.log
[ $fail -eq 0 ] || { echo "--- daemon log"; tail -30 /run/daemon.log; }

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
