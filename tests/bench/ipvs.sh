#!/bin/sh
# IPVS benchmark, run inside the test VM (tests/vm/run.sh bench) on a real
# IPVS kernel: reconcile an empty table to 1,000 tcp services x 10 real
# servers with `headnode apply`, then a no-op reconcile of the same, and
# load the same table with `ipvsadm -R` (what ipvsadm-restore runs).
# Prints a table of wall-clock times and "N passed, M failed".
set -u
# busybox sh runs its own applets first; iproute2 is the one that does netns and veth.
ip() { /sbin/ip "$@"; }
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
SERVICES=${SERVICES:-1000}
REALS=${REALS:-10}
dir=/run/bench
mkdir -p $dir
export HEADNODE_STATE_DIR=$dir/state

ip netns add bench
in_ns() { ip netns exec bench "$@"; }
in_ns ip link set lo up

# The same table twice: as a headnode config and as ipvsadm-save output.
awk -v S="$SERVICES" -v R="$REALS" 'BEGIN {
    print "[interfaces.public]\nname = \"eth1\"\naddress = \"203.0.113.210/24\"\n"
    print "[interfaces.private]\nname = \"eth0\"\naddress = \"10.0.0.254/16\"\n"
    # Only the balancer is measured: no firewall ruleset, no DHCP.
    print "[firewall]\nenabled = false\n"
    print "[dhcp]\nenabled = false\n"
    for (s = 1; s <= S; s++) {
        printf "[[balancer.virtual]]\nname = \"s%d\"\nproto = \"tcp\"\naddress = \"public\"\nport = %d\nscheduler = \"wlc\"\nreal = [", s, 10000 + s
        for (r = 1; r <= R; r++) printf "%s\"10.0.%d.%d:8000\"", (r > 1 ? ", " : ""), int(r / 250), r % 250 + 1
        print "]\n"
    }
}' > $dir/bench.toml
awk -v S="$SERVICES" -v R="$REALS" 'BEGIN {
    for (s = 1; s <= S; s++) {
        printf "-A -t 203.0.113.210:%d -s wlc\n", 10000 + s
        for (r = 1; r <= R; r++) printf "-a -t 203.0.113.210:%d -r 10.0.%d.%d:8000 -m -w 1\n", 10000 + s, int(r / 250), r % 250 + 1
    }
}' > $dir/bench.ipvsadm

# busybox date has no %N; /proc/uptime counts in 10 ms steps, enough here.
now_ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
timed() { # timed VAR command...: run, store milliseconds in VAR
    var=$1; shift
    t0=$(now_ms)
    "$@" > $dir/out 2>&1
    rc=$?
    t1=$(now_ms)
    eval "$var=$((t1 - t0))"
    return $rc
}
# "ipvs: N changes (table read in R ms, changes made in W ms)" from apply.
inner() { sed -n 's/.*table read in \([0-9]*\) ms\(, changes made in \([0-9]*\) ms\)*.*/\1 \3/p' $dir/out; }
count() { in_ns ipvsadm -Sn | wc -l; }
want=$((SERVICES * (REALS + 1)))

# Warm up: load ip_vs and the scheduler module, so neither side pays for it.
in_ns ipvsadm -A -t 203.0.113.210:1 -s wlc && in_ns ipvsadm -C

# The VM shares a busy host, so every figure is the best of ROUNDS rounds,
# and the two tools take turns within a round.
ROUNDS=${ROUNDS:-3}
record() { echo "$2" >> $dir/t.$1; }   # record NAME MS
best() { sort -n $dir/t.$1 | head -1; }
median() { sort -n $dir/t.$1 | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
round=1
while [ $round -le $ROUNDS ]; do
    in_ns ipvsadm -C; rm -rf $HEADNODE_STATE_DIR
    timed t in_ns headnode -c $dir/bench.toml apply || { bad "headnode apply (round $round)"; tail -5 $dir/out; }
    record hn_full $t
    set -- $(inner); record hn_full_write ${2:-0}
    n=$(count); [ "$n" -eq $want ] || bad "headnode made $n entries, want $want"
    timed t in_ns headnode -c $dir/bench.toml apply
    record hn_noop $t
    grep -q '^ipvs: no changes' $dir/out || bad "no-op apply changed something (round $round)"
    set -- $(inner); record hn_noop_read ${1:-0}
    timed t in_ns ipvsadm -Sn; record dump $t
    in_ns ipvsadm -C
    timed t sh -c "/sbin/ip netns exec bench ipvsadm -R < $dir/bench.ipvsadm" || bad "ipvsadm -R (round $round)"
    record restore $t
    n=$(count); [ "$n" -eq $want ] || bad "ipvsadm -R made $n entries, want $want"
    # headnode takes over an identical table it did not create: nothing to do.
    rm -rf $HEADNODE_STATE_DIR
    timed t in_ns headnode -c $dir/bench.toml apply
    record hn_adopt $t
    grep -q '^ipvs: no changes' $dir/out || bad "apply over ipvsadm's identical table changed something"
    timed t in_ns headnode -c $dir/bench.toml check; record check $t
    round=$((round + 1))
done
[ $fail -eq 0 ] && ok "$ROUNDS rounds: every apply made the full table, every no-op changed nothing"

echo
echo "IPVS benchmark: $SERVICES services x $REALS reals ($want entries), $(uname -r), QEMU TCG, best (median) of $ROUNDS"
row() { printf '%-56s %7d %9s\n' "$1" "$(best $2)" "($(median $2))"; }
printf '%-56s %7s %9s\n' "operation (wall clock of the whole command)" "ms" "(median)"
row "headnode apply, empty -> full" hn_full
row "  of which making the $want changes over netlink" hn_full_write
row "ipvsadm -R (what ipvsadm-restore runs), empty -> full" restore
row "headnode apply, no-op" hn_noop
row "  of which reading the kernel's table" hn_noop_read
row "headnode apply, no-op over ipvsadm's identical table" hn_adopt
row "ipvsadm -Sn (read the table)" dump
row "headnode check (load and validate the config)" check
hn=$(best hn_full) rs=$(best restore)
[ "$hn" -le $((rs * 11 / 10)) ] && ok "headnode no slower than ipvsadm-restore ($hn ms vs $rs ms)" \
    || bad "headnode slower than ipvsadm-restore ($hn ms vs $rs ms)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
