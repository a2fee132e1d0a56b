#!/usr/bin/env bash
# DNS benchmark: headnode against dnsmasq with the same 10,000 host names,
# each server in its own namespace (server 10.0.255.254/16, the dnsperf
# client .50 on one veth; an upstream namespace, 198.51.100.53, answering
# *.ext.test from dnsmasq for the forwarded names). Not run by CI; see the
# README section "Names: DNS".
#
#   sudo tests/bench/dns.sh [--runs N] [--seconds S]
#
# Two query sets: "local", 10,000 names of the hosts (random order, A);
# "forwarded", 1,000 outside names, asked once before measuring so that
# each server answers them from its cache. For each server and set the
# offered rate (dnsperf -Q) rises until more than 1 % of the queries are
# lost; the highest rate with at most 1 % lost is reported, with the
# server's CPU time per answered query (its cpuacct cgroup) at that rate;
# ">=" marks a server that lost no more than that at the highest rate tried.
# Each step's line also shows the packets that reached the upstream (none
# for cached names) and the datagrams dropped at a full socket buffer.
# headnode's per-client rate limit is raised for the bench: dnsperf is one
# client. headnode is the release build, or $HEADNODE_BIN.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
runs=1
secs=5
while (($#)); do
    case $1 in
        --runs) runs=$2; shift 2 ;;
        --seconds) secs=$2; shift 2 ;;
        *) echo "usage: $0 [--runs N] [--seconds S]" >&2; exit 64 ;;
    esac
done
[[ $(id -u) -eq 0 ]] || { echo "dns bench: needs root" >&2; exit 2; }
for p in dnsmasq-base dnsperf python3; do
    dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done
if [[ -z ${HEADNODE_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --quiet --release --bin headnode)
    HEADNODE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/headnode
fi

work=$(mktemp -d /tmp/headnode-dns-bench.XXXXXX)
srv=hn-dnsb-$$-srv
cli=hn-dnsb-$$-cli
up=hn-dnsb-$$-up
pid=
uppid=
cg=/sys/fs/cgroup/cpuacct/hn-dnsb-$$
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [[ -n $uppid ]] && kill "$uppid" 2>/dev/null && wait "$uppid" 2>/dev/null || true
    for ns in "$srv" "$cli" "$up"; do
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
    rm -rf "$work"
    [[ -d $cg ]] && rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
for ns in "$srv" "$cli" "$up"; do
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns" && : >"/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up
done
ip link add "hndb$$a" type veth peer name "hndb$$b"
ip link set "hndb$$a" netns "$srv"
ip link set "hndb$$b" netns "$cli"
ip -n "$srv" link set "hndb$$a" name eth0
ip -n "$cli" link set "hndb$$b" name eth0
ip -n "$srv" addr add 10.0.255.254/16 dev eth0
ip -n "$cli" addr add 10.0.255.50/16 dev eth0
ip -n "$srv" link set eth0 up
ip -n "$cli" link set eth0 up
ip link add "hndb$$c" type veth peer name "hndb$$d"
ip link set "hndb$$c" netns "$srv"
ip link set "hndb$$d" netns "$up"
ip -n "$srv" link set "hndb$$c" name eth1
ip -n "$up" link set "hndb$$d" name eth0
ip -n "$srv" addr add 198.51.100.10/24 dev eth1
ip -n "$up" addr add 198.51.100.53/24 dev eth0
ip -n "$srv" link set eth1 up
ip -n "$up" link set eth0 up

# The names: node00001 ... node10000 at 10.0.0.1 onwards, for both servers.
python3 - "$work" <<'EOF'
import random, sys
d = sys.argv[1]
random.seed(1)
hosts, toml, local, fwd = [], [], [], []
for i in range(1, 10001):
    ip = f"10.0.{i // 250}.{i % 250 + 1}"
    name = f"node{i:05d}"
    hosts.append(f"{ip} {name}.cluster.test {name}\n")
    toml.append(f'[[host]]\nname = "{name}"\nmac = "02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"\naddress = "{ip}"\n\n')
    local.append(f"{name}.cluster.test A\n")
random.shuffle(local)
for i in range(1000):
    fwd.append(f"name{i:04d}.ext.test A\n")
open(f"{d}/hosts", "w").writelines(hosts)
open(f"{d}/hosts.toml", "w").writelines(toml)
open(f"{d}/local.txt", "w").writelines(local)
open(f"{d}/forwarded.txt", "w").writelines(fwd)
EOF
cat >"$work/headnode.toml" <<EOF
[interfaces.public]
name = "eth1"
address = "198.51.100.10/24"

[interfaces.private]
name = "eth0"
address = "10.0.255.254/16"

[dhcp]
enabled = false

[firewall]
enabled = false

[dns]
domain = "cluster.test"
name = "head"
upstream = ["198.51.100.53"]
cache_size = 10000
# One client (dnsperf) sends everything: no per-client limit in the way.
rate_limit = 1000000

EOF
cat "$work/hosts.toml" >>"$work/headnode.toml"

# The upstream for *.ext.test, on its own CPU time (not measured). Its
# answers carry a TTL of an hour (dnsmasq's default for --address is 0, which
# neither server caches: every "cached" query would have been forwarded).
ip netns exec "$up" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
    --listen-address=198.51.100.53 --address=/ext.test/192.0.2.1 --user=root --pid-file= \
    --cache-size=0 --local-ttl=3600 >"$work/upstream.log" 2>&1 &
uppid=$!

[[ -d /sys/fs/cgroup/cpuacct ]] || { echo "dns bench: needs the cgroup v1 cpuacct controller" >&2; exit 2; }
mkdir -p "$cg"
cpu_ns() { cat "$cg/cpuacct.usage"; }
# Packets the upstream received: a run of cached names must send it none.
up_rx() { ip netns exec "$up" cat /sys/class/net/eth0/statistics/rx_packets; }
# UDP datagrams a namespace dropped for a full socket buffer: where the loss is.
rcvbuf_drops() { ip netns exec "$1" awk '/^Udp:/ && n++ {print $6}' /proc/net/snmp; }

start_server() {
    case $1 in
        headnode)
            ip netns exec "$srv" env HEADNODE_STATE_DIR="$work/state" HEADNODE_RUN_DIR="$work/run" \
                "$HEADNODE_BIN" -c "$work/headnode.toml" run >"$work/server.log" 2>&1 &
            ;;
        dnsmasq)
            # dnsmasq's own settings for the same job: the names from a hosts
            # file in the domain, the rest forwarded to the same upstream,
            # a cache as large as headnode's.
            ip netns exec "$srv" dnsmasq --no-daemon --no-resolv --no-hosts --bind-interfaces \
                --listen-address=10.0.255.254 --addn-hosts="$work/hosts" --domain=cluster.test \
                --local=/cluster.test/ --server=198.51.100.53 --cache-size=10000 --user=root \
                --pid-file= --dns-forward-max=1000 >"$work/server.log" 2>&1 &
            ;;
    esac
    pid=$!
    echo "$pid" >"$cg/cgroup.procs"
    for _ in $(seq 100); do
        ip netns exec "$cli" dig +short +time=1 +tries=1 @10.0.255.254 node00001.cluster.test 2>/dev/null \
            | grep -q '^10\.0\.0\.2$' && return 0
        sleep 0.1
    done
    echo "$1 does not answer:"; cat "$work/server.log"; exit 1
}

# One dnsperf run at RATE: prints "qps lost% cpu-us-per-query upstream-packets
# server-drops client-drops";
# fails if an answer was not NOERROR (a fast error is no answer).
run_at() { # set rate
    local before after upb upa sdb sda cdb cda
    before=$(cpu_ns)
    upb=$(up_rx) sdb=$(rcvbuf_drops "$srv") cdb=$(rcvbuf_drops "$cli")
    # The output goes to a file: with losses it lists every timed out query.
    ip netns exec "$cli" dnsperf -s 10.0.255.254 -d "$work/$1.txt" -l "$secs" -Q "$2" -c 4 -q 2000 -t 1 \
        >"$work/dnsperf.out" 2>&1 || true
    after=$(cpu_ns)
    upa=$(up_rx) sda=$(rcvbuf_drops "$srv") cda=$(rcvbuf_drops "$cli")
    python3 - "$work/dnsperf.out" "$before" "$after" "$upb" "$upa" $((sda - sdb)) $((cda - cdb)) <<'EOF'
import re, sys
out = open(sys.argv[1]).read()
before, after, upb, upa, sd, cd = map(int, sys.argv[2:8])
m = re.search(r"Queries sent:\s+(\d+)", out)
if not m:
    sys.exit("dnsperf failed:\n" + out[-2000:])
sent = int(m.group(1))
done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))
qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
codes = re.search(r"Response codes:\s+(.*)", out)
if done and not (codes and re.fullmatch(r"NOERROR \d+ \(100\.00%\)", codes.group(1).strip())):
    sys.exit("answers other than NOERROR: " + (codes.group(1) if codes else "none"))
lost = 100.0 * (sent - done) / sent if sent else 100.0
print(f"{qps:.0f} {lost:.2f} {(after - before) / 1e3 / max(done, 1):.2f} {upa - upb} {sd} {cd}")
EOF
}

rates=(10000 20000 30000 40000 45000 50000 55000 60000 70000 80000 100000 130000 160000)
results=()
for server in headnode dnsmasq; do
    start_server "$server"
    for set in local forwarded; do
        # Warm: every name once (the forwarded ones into the cache).
        ip netns exec "$cli" dnsperf -s 10.0.255.254 -d "$work/$set.txt" -n 1 -q 100 >/dev/null 2>&1 || true
        best= top=
        for _ in $(seq "$runs"); do
            for rate in "${rates[@]}"; do
                line=$(run_at "$set" "$rate")
                echo "  $server $set at $rate/s: $line (qps lost% us/query upstream-packets server-drops client-drops)"
                lost=$(awk '{print $2}' <<<"$line")
                awk -v l="$lost" 'BEGIN {exit !(l > 1)}' && break
                if [[ -z $best ]] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN {exit !(a > b)}'; then
                    best=$line
                fi
                # The last rate passed: the server's limit is above the search.
                if [[ $rate == "${rates[-1]}" ]]; then top=">="; fi
            done
        done
        results+=("$server $set $top${best:-FAILED}")
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done

echo
echo "| server | local names: qps at <= 1 % lost | CPU per query | cached forwarded names: qps | CPU per query |"
echo "|---|---|---|---|---|"
for server in headnode dnsmasq; do
    l=$(printf '%s\n' "${results[@]}" | awk -v s="$server" '$1 == s && $2 == "local" {print $3, $5}')
    f=$(printf '%s\n' "${results[@]}" | awk -v s="$server" '$1 == s && $2 == "forwarded" {print $3, $5}')
    echo "| $server | ${l% *} | ${l#* } us | ${f% *} | ${f#* } us |"
done
