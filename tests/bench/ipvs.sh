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

if timed hn_full in_ns headnode -c $dir/bench.toml apply; then ok "headnode apply: empty -> $SERVICES x $REALS"; else bad "headnode apply"; tail -5 $dir/out; fi
set -- $(inner); hn_full_read=${1:-0} hn_full_write=${2:-0}
n=$(count); [ "$n" -eq $want ] && ok "table has $n entries" || bad "table has $n entries, want $want"
if timed hn_noop in_ns headnode -c $dir/bench.toml apply; then ok "headnode no-op apply"; else bad "headnode no-op apply"; fi
grep -q '^ipvs: no changes' $dir/out && ok "no-op apply changed nothing" || bad "no-op apply changed something"
set -- $(inner); hn_noop_read=${1:-0}
timed dump in_ns ipvsadm -Sn; ok "ipvsadm -Sn (read the table)"
in_ns ipvsadm -C
timed rs_full sh -c "/sbin/ip netns exec bench ipvsadm -R < $dir/bench.ipvsadm" && ok "ipvsadm -R: empty -> $SERVICES x $REALS" || bad "ipvsadm -R"
n=$(count); [ "$n" -eq $want ] && ok "table has $n entries" || bad "table has $n entries after ipvsadm -R"
# headnode takes over a table it did not create (no ownership yet): no-op too.
rm -rf $HEADNODE_STATE_DIR
timed hn_adopt in_ns headnode -c $dir/bench.toml apply && ok "headnode apply over the ipvsadm table" || bad "adopt"
grep -q '^ipvs: no changes' $dir/out && ok "identical ipvsadm table needs no change" || { bad "adopting changed something"; head -5 $dir/out; }
in_ns ipvsadm -C
timed hn_full2 in_ns headnode -c $dir/bench.toml apply && ok "headnode apply again after ipvsadm -C"

echo
echo "IPVS benchmark: $SERVICES services x $REALS reals ($want entries), $(uname -r), QEMU TCG"
printf '%-52s %8s\n' "operation (wall clock of the whole command)" "ms"
printf '%-52s %8d\n' "headnode apply, empty -> full" "$hn_full"
printf '%-52s %8d\n' "  of which reading the kernel's table" "$hn_full_read"
printf '%-52s %8d\n' "  of which making the $want changes" "$hn_full_write"
printf '%-52s %8d\n' "headnode apply, empty -> full (after ipvsadm -C)" "$hn_full2"
printf '%-52s %8d\n' "ipvsadm -R (ipvsadm-restore), empty -> full" "$rs_full"
printf '%-52s %8d\n' "headnode apply, no-op" "$hn_noop"
printf '%-52s %8d\n' "  of which reading the kernel's table" "$hn_noop_read"
printf '%-52s %8d\n' "headnode apply, no-op over ipvsadm's table" "$hn_adopt"
printf '%-52s %8d\n' "ipvsadm -Sn (read the table)" "$dump"
best=$hn_full; [ "$hn_full2" -lt "$best" ] && best=$hn_full2
[ "$best" -le $((rs_full * 11 / 10)) ] && ok "headnode no slower than ipvsadm-restore" || bad "headnode slower than ipvsadm-restore ($best ms vs $rs_full ms)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
