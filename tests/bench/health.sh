#!/bin/sh
# Health-check benchmark, run inside the test VM (tests/vm/run.sh health) on
# a real IPVS kernel, in a network namespace of its own: REALS tcp real
# servers (one AnyIP listener, tests/bench/health_listener.rs) checked every
# second by `headnode run` (tcp checks) and by keepalived's TCP_CHECK
# (keepalived -C, the checker only) at the same time, on the same targets.
# Measured over WINDOW seconds after WARM: CPU time and memory of each, and
# from the listener's side the interval between two checks of one target.
# keepalived gets a virtual server of its own (its IPVS table is the
# namespace's, inside the VM) and checks from 10.0.0.2; headnode's checks
# come from the target address itself (the kernel's choice for a local
# destination), so the listener can tell the checkers apart. Prints a table and "N passed, M failed".
set -u
ip() { /sbin/ip "$@"; }
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
check() {
    local what=$1; shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
REALS=${REALS:-2000}
WARM=${WARM:-20}
WINDOW=${WINDOW:-60}
NS=${NS:-hc}
dir=${DIR:-/run/hc}
LISTENER=${LISTENER:-/test/health_listener}
HEADNODE=${HEADNODE:-headnode}
KEEPALIVED=${KEEPALIVED:-/usr/sbin/keepalived}
[ -x "$KEEPALIVED" ] || KEEPALIVED=
mkdir -p $dir/state $dir/run
ip netns add $NS
trap 'ip netns del $NS 2>/dev/null' EXIT
in_ns() { ip netns exec $NS "$@"; }
in_ns ip link set lo up
# The interfaces the config names: veth pairs inside the namespace, so
# nothing leaves it.
for i in 0 1; do
    in_ns ip link add eth$i type veth peer name peer$i
    in_ns ip link set peer$i up
done
in_ns ip addr add 10.0.0.254/16 dev eth0
in_ns ip addr add 10.0.0.2/16 dev eth0
in_ns ip addr add 203.0.113.210/24 dev eth1
in_ns ip link set eth0 up
in_ns ip link set eth1 up
# Every address of 10.0.128.0/17 is local: the real servers.
in_ns ip route add local 10.0.128.0/17 dev lo

awk -v R="$REALS" -v KA="$KEEPALIVED" 'BEGIN {
    print "[interfaces.public]\nname = \"eth1\"\naddress = \"203.0.113.210/24\"\n"
    print "[interfaces.private]\nname = \"eth0\"\naddress = \"10.0.0.254/16\"\n"
    print "[firewall]\nenabled = false\n"
    print "[dhcp]\nenabled = false\n"
    # keepalived needs IPVS; without it headnode balances with nftables.
    if (!KA) print "[balancer]\nbackend = \"nftables\"\n"
    printf "[[balancer.virtual]]\nname = \"hc\"\nproto = \"tcp\"\naddress = \"public\"\nport = 80\nscheduler = \"rr\"\n"
    print "health = { check = \"tcp\", interval = \"1s\", timeout = \"1s\", rise = 2, fall = 3 }"
    printf "real = ["
    for (i = 0; i < R; i++) printf "%s\"10.0.%d.%d:8000\"", (i > 0 ? ", " : ""), 128 + int(i / 250), i % 250 + 1
    print "]"
}' > $dir/headnode.toml
awk -v R="$REALS" 'BEGIN {
    print "global_defs {\n    router_id hc\n}"
    print "virtual_server 203.0.113.211 80 {\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP"
    for (i = 0; i < R; i++) {
        printf "    real_server 10.0.%d.%d 8000 {\n        weight 1\n", 128 + int(i / 250), i % 250 + 1
        print "        TCP_CHECK {\n            connect_timeout 1\n            retry 2\n            bindto 10.0.0.2\n        }\n    }"
    }
    print "}"
}' > $dir/keepalived.conf

# busybox date has no %N; /proc/uptime counts in 10 ms steps.
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# CPU time of some pids in ms (utime + stime, 100 ticks a second).
cpu_ms() { [ $# -gt 0 ] || { echo 0; return; }; for p in "$@"; do cut -d' ' -f14,15 /proc/$p/stat; done | awk '{ t += $1 + $2 } END { print t * 10 }'; }
kb() { # kb FIELD pids...: sum of a /proc/PID/status field, in kB
    f=$1; shift
    [ $# -gt 0 ] || { echo 0; return; }
    for p in "$@"; do grep "^$f:" /proc/$p/status; done | awk '{ t += $2 } END { print t }'
}

# /sbin/ip directly, not in_ns: a shell function in the background would be
# a subshell, and $! its pid instead of the program's.
/sbin/ip netns exec $NS $LISTENER 8000 $WARM $WINDOW > $dir/listener.out 2>&1 &
listener=$!
sleep 0.5
/sbin/ip netns exec $NS env HEADNODE_STATE_DIR=$dir/state HEADNODE_RUN_DIR=$dir/run \
    $HEADNODE -c $dir/headnode.toml run > $dir/headnode.log 2>&1 &
hn=$!
kapids=
if [ -n "$KEEPALIVED" ]; then
    /sbin/ip netns exec $NS $KEEPALIVED -C -n -f $dir/keepalived.conf -p $dir/ka.pid \
        -c $dir/ka-check.pid > $dir/keepalived.log 2>&1 &
fi
sleep $WARM
[ -z "$KEEPALIVED" ] || kapids=$(cat $dir/ka.pid $dir/ka-check.pid 2>/dev/null | tr '\n' ' ')
check "headnode run is running" kill -0 $hn
[ -z "$KEEPALIVED" ] ||
    check "keepalived and its checker are running ($kapids)" [ "$(echo $kapids | wc -w)" -eq 2 ]
t0=$(now_ms); hn0=$(cpu_ms $hn); ka0=$(cpu_ms $kapids)
sleep $WINDOW
t1=$(now_ms); hn1=$(cpu_ms $hn); ka1=$(cpu_ms $kapids)
hn_rss=$(kb VmRSS $hn) hn_hwm=$(kb VmHWM $hn)
ka_rss=$(kb VmRSS $kapids) ka_hwm=$(kb VmHWM $kapids)
wait $listener
cat $dir/listener.out
el=$((t1 - t0))
row() { # row NAME CPU_MS RSS HWM CHECKER_ADDR
    stats=$(grep "^checker $5 " $dir/listener.out)
    printf '| %s | %s | %s %% | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "$(echo "$stats" | awk '{ print $8 }')" \
        "$(awk -v c=$2 -v e=$el 'BEGIN { printf "%.1f", 100 * c / e }')" \
        "$(awk -v k=$3 'BEGIN { printf "%.1f MB", k / 1024 }')" \
        "$(awk -v k=$4 'BEGIN { printf "%.1f MB", k / 1024 }')" \
        "$(echo "$stats" | awk '{ print $10 }')" \
        "$(echo "$stats" | awk '{ print $12 }')" \
        "$(echo "$stats" | awk '{ print $14 }')" \
        "$(echo "$stats" | awk '{ print $16 }')"
}
hn_addr=local
echo
echo "$REALS real servers, tcp check every 1 s, ${WINDOW} s measured after ${WARM} s, kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPUs"
echo
echo '| checker | checks/s | CPU | RSS | peak RSS | mean interval ms | p50 ms | p99 ms | max ms |'
echo '|---|---|---|---|---|---|---|---|---|'
row "headnode run" $((hn1 - hn0)) $hn_rss $hn_hwm "$hn_addr"
[ -z "$KEEPALIVED" ] || row "keepalived -C (parent + checker)" $((ka1 - ka0)) $ka_rss $ka_hwm 10.0.0.2
echo
per_s() { grep "^checker $1 " $dir/listener.out | awk '{ print $8 }'; }
check "headnode checked every real every second ($(per_s "$hn_addr")/s)" \
    awk -v r="$(per_s "$hn_addr")" -v n=$REALS 'BEGIN { exit !(r >= 0.97 * n) }'
[ -z "$KEEPALIVED" ] ||
    check "keepalived checked every real every second ($(per_s 10.0.0.2)/s)" \
        awk -v r="$(per_s 10.0.0.2)" -v n=$REALS 'BEGIN { exit !(r >= 0.97 * n) }'
check "headnode saw no real server down" sh -c "! grep -q 'health: down' $dir/headnode.log"
kill $hn $kapids 2>/dev/null
sleep 1
[ $fail -eq 0 ] || { tail -20 $dir/headnode.log; tail -20 $dir/keepalived.log; }
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
