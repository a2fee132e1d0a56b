#!/bin/sh
# One power-loss round inside the test VM (tests/vm/run.sh powerloss): the
# host kills qemu itself at a random moment of this script, so what the
# guest's page cache held is gone, as at a power cut. The lease file lives on
# /dev/vda (ext4, opened by qemu with cache=none); /dev/vdb holds the leases
# clients saw acknowledged in the round before ("mac ip" lines, zero-padded).
#   1. check: every one of those is the address's last record in the lease
#      file, bound to that MAC ("CHECKED n acknowledged, m missing");
#   2. the server starts cleanly: no bad line skipped ("START ok");
#   3. load: udhcpc in 8 client namespaces, one new MAC per lease, each lease
#      printed as "ACKED mac ip ." to the console once the client has it.
# hn.load=0 (the last boot) stops after 2 and powers off.
set -u
ip() { /sbin/ip "$@"; }
in_ns() { ns=$1; shift; ip netns exec "$ns" "$@"; }
round=0 load=1
for w in $(cat /proc/cmdline); do
    case $w in hn.round=*) round=${w#hn.round=} ;; hn.load=*) load=${w#hn.load=} ;; esac
done

modprobe virtio_pci 2>/dev/null
modprobe virtio_blk 2>/dev/null
i=0
while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /data
mount -t ext4 /dev/vda /data || { echo "powerloss: FAIL cannot mount /dev/vda"; exit 1; }

# 1. Every lease acknowledged before the kill is in the file.
tr -d '\000' </dev/vdb >/tmp/acked
touch /data/leases
awk -v acked=/tmp/acked '
    NF >= 3 && $1 !~ /^#/ { last[$2] = $1 " " $3 }
    END {
        n = 0; missing = 0
        while ((getline line < acked) > 0) {
            split(line, f, " ")
            if (f[2] == "") continue
            n++
            if (last[f[2]] != "bound " f[1]) { missing++; print "MISSING " f[1] " " f[2] " (file: " last[f[2]] ")" }
        }
        print "CHECKED " n " acknowledged, " missing " missing"
    }' /data/leases

# 2. The server starts cleanly on what the power cut left.
cat >/tmp/pl.toml <<'EOF'
[interfaces.public]
name = "wan0"
address = "203.0.113.2/24"

[interfaces.private]
name = "lan0"
address = "10.77.0.1/16"

[dhcp]
lease_time = "1h"
lease_file = "/data/leases"

[dhcp.pool]
start = "10.77.1.0"
end = "10.77.254.254"

[firewall]
enabled = false
EOF
ip netns add head
in_ns head ip link set lo up
in_ns head ip link add wan0 type dummy
in_ns head ip addr add 203.0.113.2/24 dev wan0
in_ns head ip link set wan0 up
in_ns head ip link add lan0 type bridge
in_ns head ip addr add 10.77.0.1/16 dev lan0
in_ns head ip link set lan0 up
c=0
while [ $c -lt 8 ]; do
    ip netns add c$c
    ip link add v$c type veth peer name p$c
    ip link set v$c netns c$c
    ip link set p$c netns head
    in_ns head ip link set p$c master lan0 up
    in_ns c$c ip link set v$c name eth0
    in_ns c$c ip link set eth0 up
    c=$((c + 1))
done
in_ns head headnode -c /tmp/pl.toml dhcp >/tmp/server.log 2>&1 &
i=0
until grep -q "DHCP serving" /tmp/server.log || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
if ! grep -q "DHCP serving" /tmp/server.log; then
    echo "START FAIL: the server did not start"
    cat /tmp/server.log
elif grep -q "line skipped" /tmp/server.log; then
    echo "START FAIL: the lease file had bad lines"
    grep -E "lease file|WARN|ERROR" /tmp/server.log
else
    grep "cut short" /tmp/server.log
    echo "START ok ($(grep -o '[0-9]* lease record(s)' /tmp/server.log))"
fi
if [ "$load" = 0 ]; then
    sync
    umount /data
    exit 0
fi

# 3. Load until the host pulls the plug.
cat >/tmp/acked.sh <<'EOF'
#!/bin/sh
[ "$1" = bound ] && echo "ACKED $(cat /sys/class/net/$interface/address) $ip ." >/dev/console
exit 0
EOF
chmod +x /tmp/acked.sh
# One loop per client namespace, run inside it (one netns exec, not one a
# lease): a new MAC, then udhcpc until it has a lease or gives up.
cat >/tmp/client.sh <<'EOF'
#!/bin/sh
k=0
while :; do
    k=$((k + 1))
    mac=$(printf '02:%02x:%02x:%02x:%02x:00' $(($2 % 256)) "$1" $((k / 256 % 256)) $((k % 256)))
    /sbin/ip link set eth0 address "$mac"
    udhcpc -i eth0 -f -q -n -t 3 -T 1 -A 1 -s /tmp/acked.sh >/dev/null 2>&1
done
EOF
echo "LOAD started"
for c in 0 1 2 3 4 5 6 7; do in_ns c$c sh /tmp/client.sh $c "$round" & done
wait
