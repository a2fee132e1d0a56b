#!/usr/bin/env bash
# TFTP benchmark: headnode against tftpd-hpa and dnsmasq (TFTP only), each
# in its own pair of network namespaces (server 192.168.1.254, client .50,
# one veth, MTU 1500). Not run by CI; see README "Network boot: TFTP".
#
#   sudo tests/bench/tftp.sh [--runs N]
#
# Every server gets the same client (tests/bench/tftp_client.py, asking
# blksize 1468, windowsize 16 and tsize) and the same files:
#   big     one 50 MB file, one client; best of N runs
#   small   200 clients at once, each a 64 KiB file; best of N runs
# Measured: throughput (MB/s of file data) and the server's CPU time per MB
# (a cpuacct cgroup holding the server and whatever it forks: tftpd-hpa
# forks one child per transfer). Best run by throughput; the machine's other
# load shows in the spread of the runs (printed).
# tftpd-hpa comes from its Debian package, unpacked (its service never
# starts); dnsmasq from dnsmasq-base. headnode is the release build, or
# $HEADNODE_BIN.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
runs=3
[[ ${1:-} == --runs ]] && runs=$2
[[ $(id -u) -eq 0 ]] || { echo "tftp bench: needs root" >&2; exit 2; }
for p in dnsmasq-base libwrap0 python3; do   # libwrap0: in.tftpd links it
    dpkg -s "$p" >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null
done

cache=$ROOT/tests/vm/cache
mkdir -p "$cache"
if [[ ! -x $cache/tftpd-hpa/usr/sbin/in.tftpd ]]; then
    (cd "$cache" && apt-get download -q tftpd-hpa 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    dpkg-deb -x "$(ls "$cache"/tftpd-hpa_*.deb | tail -1)" "$cache/tftpd-hpa"
fi
tftpd=$cache/tftpd-hpa/usr/sbin/in.tftpd
if [[ -z ${HEADNODE_BIN:-} ]]; then
    (cd "$ROOT" && cargo build --quiet --release --bin headnode)
    HEADNODE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/headnode
fi

work=$(mktemp -d /tmp/headnode-tftp-bench.XXXXXX)
srv=hn-tftpb-$$-srv
cli=hn-tftpb-$$-cli
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    rm -rf "/etc/netns/$srv" "/etc/netns/$cli" "$work"
    [[ -d $cg ]] && rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
for ns in "$srv" "$cli"; do
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns" && : >"/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up
done
ip link add "hntb$$a" type veth peer name "hntb$$b"
ip link set "hntb$$a" netns "$srv"
ip link set "hntb$$b" netns "$cli"
ip -n "$srv" link set "hntb$$a" name eth0
ip -n "$cli" link set "hntb$$b" name eth0
ip -n "$srv" addr add 192.168.1.254/24 dev eth0
ip -n "$cli" addr add 192.168.1.50/24 dev eth0
ip -n "$srv" link set eth0 up
ip -n "$cli" link set eth0 up
# headnode's config needs a public side: a veth whose far end stays here.
ip -n "$srv" link add eth1 type veth peer name wan0
ip -n "$srv" addr add 203.0.113.210/24 dev eth1
ip -n "$srv" link set eth1 up
ip -n "$srv" link set wan0 up

root=$work/root
mkdir -p "$root"
head -c 50000000 /dev/urandom >"$root/big"
head -c 65536 /dev/urandom >"$root/small"
chmod -R a+rX "$root"
cat >"$work/headnode.toml" <<EOF
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
enabled = false

[firewall]
enabled = false

[tftp]
root = "$root"
max_transfers = 300
max_transfers_per_client = 300
EOF

start_server() {
    case $1 in
        headnode)
            ip netns exec "$srv" env HEADNODE_STATE_DIR="$work/state" HEADNODE_RUN_DIR="$work/run" \
                "$HEADNODE_BIN" -c "$work/headnode.toml" run >"$work/server.log" 2>&1 &
            ;;
        tftpd-hpa)
            # -L stays in the foreground and forks per transfer, as the service does.
            ip netns exec "$srv" "$tftpd" -L -u root -s "$root" -a 192.168.1.254:69 -B 1468 \
                >"$work/server.log" 2>&1 &
            ;;
        dnsmasq)
            ip netns exec "$srv" dnsmasq --no-daemon --port=0 --enable-tftp --tftp-root="$root" \
                --listen-address=192.168.1.254 --bind-interfaces --no-resolv --no-hosts \
                --user=root --pid-file= --tftp-max=300 --log-facility=- >"$work/server.log" 2>&1 &
            ;;
    esac
    pid=$!
    echo "$pid" >"$cg/cgroup.procs"   # every thread (tokio's workers too)
    sleep 1
    kill -0 "$pid" 2>/dev/null || { echo "$1 did not start:"; cat "$work/server.log"; exit 1; }
}

# CPU time of the server and everything it forks, from a cpuacct cgroup of
# its own: tftpd-hpa serves each transfer in a child that it does not wait
# for (SIGCHLD ignored), so no rusage counts those.
cg=/sys/fs/cgroup/cpuacct/hn-tftpb-$$
[[ -d /sys/fs/cgroup/cpuacct ]] || { echo "tftp bench: needs the cgroup v1 cpuacct controller" >&2; exit 2; }
mkdir -p "$cg"
cpu_ns() { cat "$cg/cpuacct.usage"; }

# One measurement: prints "MB/s ms-cpu-per-MB options".
measure() { # server-pid file clients
    local before after out
    before=$(cpu_ns)
    out=$(ip netns exec "$cli" python3 "$HERE/tftp_client.py" 192.168.1.254 "$2" 1468 16 "$3")
    sleep 0.5   # the server reads the last ACKs and reaps its children
    after=$(cpu_ns)
    python3 - "$out" "$before" "$after" "$3" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); before, after, n = map(int, sys.argv[2:5])
if r["failed"] or r["ok"] != n:
    print(f"FAILED {r}"); sys.exit(0)
mb = r["bytes"] / 1e6
print(f"{mb / r['seconds']:.1f} {(after - before) / 1e6 / mb:.2f} {r.get('options', {})}")
EOF
}

results=()
for server in headnode tftpd-hpa dnsmasq; do
    start_server "$server"
    for scenario in big small; do
        case $scenario in big) file=big n=1 ;; small) file=small n=200 ;; esac
        best=
        for _ in $(seq "$runs"); do
            line=$(measure "$pid" "$file" "$n")
            echo "  $server $scenario: $line"
            [[ $line == FAILED* ]] && continue
            if [[ -z $best ]] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN {exit !(a > b)}'; then
                best=$line
            fi
        done
        results+=("$server $scenario ${best:-FAILED}")
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done

echo
echo "| server | 50 MB, 1 client: MB/s | CPU ms/MB | 200 x 64 KiB at once: MB/s | CPU ms/MB | options taken |"
echo "|---|---|---|---|---|---|"
for server in headnode tftpd-hpa dnsmasq; do
    big=$(printf '%s\n' "${results[@]}" | awk -v s="$server" '$1 == s && $2 == "big" {print $3, $4}')
    small=$(printf '%s\n' "${results[@]}" | awk -v s="$server" '$1 == s && $2 == "small" {print $3, $4}')
    opts=$(printf '%s\n' "${results[@]}" | awk -v s="$server" '$1 == s && $2 == "big" {for (i = 5; i <= NF; i++) printf "%s ", $i}')
    echo "| $server | ${big% *} | ${big#* } | ${small% *} | ${small#* } | ${opts% } |"
done
