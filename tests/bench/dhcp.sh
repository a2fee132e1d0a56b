#!/usr/bin/env bash
# DHCP benchmark: headnode against dnsmasq, ISC dhcpd and Kea dhcp4, driven by
# Kea's perfdhcp. Not run by CI; see README "DHCP performance".
#
#   sudo tests/bench/dhcp.sh [--quick] [--servers LIST] [--scenarios LIST]
#                            [--period SECONDS] [--out DIR] [--keep]
#
# Each server, in turn, gets its own pair of network namespaces (server and
# client, one veth between them). perfdhcp runs in the client namespace as a
# relay agent (giaddr 10.99.0.2, replies to port 67) and picks every exchange's
# MAC from the same list (-M) that generated the four servers' configs.
#
# Measured per server and scenario:
#   startup   exec until the first OFFER answers a DISCOVER sent every 2 ms
#   rate      completed DORA/s at the highest stepped rate with < 1 % lost
#   flood     completed DORA/s with perfdhcp unthrottled
#   cpu       server utime+stime (/proc/PID/stat) per completed DORA, at 1000/s
#             (same offered load for all) and at `rate`
#   delay     median and 99th percentile request->reply delay at 1000/s
#             (or at `rate` when that is lower), from perfdhcp -x t
#   rss       VmHWM at the end
#   fsync     (pool only) fsync+fdatasync calls per ACK, from a separate
#             short run under strace (not the measured runs)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOLS="$HERE/dhcp_tools.py"

QUICK=0
KEEP=0
SERVERS="headnode,dnsmasq,dhcpd,kea"
SCENARIOS=""
PERIOD=""
OUT="$HERE/results"
HEADNODE_BIN="${HEADNODE_BIN:-}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) QUICK=1 ;;
        --keep) KEEP=1 ;;
        --servers) SERVERS=$2; shift ;;
        --scenarios) SCENARIOS=$2; shift ;;
        --period) PERIOD=$2; shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "dhcp.sh: unknown argument $1" >&2; usage >&2; exit 1 ;;
    esac
    shift
done

if [[ $QUICK -eq 1 ]]; then
    : "${SCENARIOS:=res200,pool}"
    : "${PERIOD:=2}"
    LADDER=(500 1000 4000 8000)
    LADDER_DOWN=(100)
    BISECT=0
    POOL_CLIENTS=2000
else
    : "${SCENARIOS:=res200,res10k,res50k,pool}"
    : "${PERIOD:=5}"
    LADDER=(500 1000 2000 4000 8000 12000 16000 24000)
    LADDER_DOWN=(200 100 50)   # tried in turn when the first step already loses too much
    BISECT=2
    POOL_CLIENTS=20000
fi
DELAY_RATE=1000
MAX_DROP_PCT=1

[[ $(id -u) -eq 0 ]] || { echo "dhcp.sh: run as root (it creates network namespaces)" >&2; exit 1; }

SERVER_IP=10.99.0.1
RELAY_IP=10.99.0.2
CLK_TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d /var/tmp/headnode-bench.XXXXXX)   # real disk: the pool run's lease files live here
SHM=$(mktemp -d /dev/shm/headnode-bench.XXXXXX)     # tmpfs: lease files of the reservation runs
PIDS=()
NETNS=()

cleanup() {
    local rc=$?
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.2
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for n in "${NETNS[@]}"; do ip netns del "$n" 2>/dev/null; done
    rm -rf "$SHM"
    if [[ $KEEP -eq 1 ]]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------- packages
install_packages() {
    local need=()
    command -v perfdhcp >/dev/null || need+=(kea-admin)
    command -v kea-dhcp4 >/dev/null || need+=(kea-dhcp4-server)
    command -v dhcpd >/dev/null || need+=(isc-dhcp-server)
    command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
    command -v python3 >/dev/null || need+=(python3)
    command -v strace >/dev/null || need+=(strace)
    [[ ${#need[@]} -eq 0 ]] && return
    log "installing ${need[*]}"
    # The server packages must not start their daemons on this machine's real
    # interfaces: hold service starts while installing, and disable the units.
    local guard=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    [[ $guard -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now isc-dhcp-server kea-dhcp4-server 2>/dev/null || true
    fi
}

# The binary the .deb ships: static, musl, release. (Its allocator and its
# lack of shared libraries both show in CPU and RSS, so measure that one.)
MUSL=x86_64-unknown-linux-musl
headnode_binary() {
    if [[ -n $HEADNODE_BIN ]]; then return; fi
    local cargo=${CARGO:-cargo}
    command -v "$cargo" >/dev/null || cargo=${SUDO_USER:+/home/$SUDO_USER/.cargo/bin/cargo}
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$MUSL"; then
        rustup target add "$MUSL"
    fi
    log "building headnode (release, static $MUSL, as shipped)"
    (cd "$ROOT" && "${cargo:-cargo}" build --release --quiet --target "$MUSL" --bin headnode)
    HEADNODE_BIN="$ROOT/target/$MUSL/release/headnode"
}

# ---------------------------------------------------------------- scenarios
# scenario -> reservations, prefix length, pool clients
scenario_params() {
    case $1 in
        res200) echo "200 24 0" ;;
        res10k) echo "10000 16 0" ;;
        res50k) echo "50000 16 0" ;;
        pool) echo "0 16 $POOL_CLIENTS" ;;
        *) echo "dhcp.sh: unknown scenario $1" >&2; exit 1 ;;
    esac
}

# hosts.tsv (mac, address, name) for N reservations: 10.99.0.10 upwards,
# skipping .0 and .255; macs.txt for perfdhcp -M.
gen_hosts() { # N FILE
    awk -v n="$1" 'BEGIN {
        a = 10; i = 0
        while (i < n) {
            if (a % 256 != 0 && a % 256 != 255) {
                printf "02:00:00:%02x:%02x:%02x\t10.99.%d.%d\tn%d\n", int(i/65536), int(i/256)%256, i%256, int(a/256), a%256, i
                i++
            }
            a++
        }
    }' > "$2"
}
gen_pool_macs() { # N FILE
    awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "02:01:00:%02x:%02x:%02x\n", int(i/65536), int(i/256)%256, i%256 }' > "$2"
}
POOL_START=10.99.1.1
POOL_END=10.99.250.254

# ---------------------------------------------------------------- configs
# Equivalent settings everywhere: router and DNS = the server, domain
# bench.example, 12 h leases, host name from the reservation, no ping check,
# no per-packet logging.
conf_headnode() { # DIR HOSTS PREFIX POOL LEASEDIR
    local d=$1 f=$1/headnode.toml
    {
        printf '[interfaces.public]\nname = "pub0"\naddress = "192.0.2.1/24"\n\n'
        printf '[interfaces.private]\nname = "bs0"\naddress = "%s/%s"\n\n' "$SERVER_IP" "$3"
        printf '[dhcp]\nlease_time = "12h"\ndns_servers = ["%s"]\ndomain_name = "bench.example"\nlease_file = "%s/headnode.leases"\n' "$SERVER_IP" "$5"
        if [[ $4 -gt 0 ]]; then printf '\n[dhcp.pool]\nstart = "%s"\nend = "%s"\n' "$POOL_START" "$POOL_END"; fi
        awk -F'\t' '{ printf "\n[[host]]\nname = \"%s\"\nmac = \"%s\"\naddress = \"%s\"\n", $3, $1, $2 }' "$2"
    } > "$f"
    SERVER_CMD=(env RUST_LOG="${BENCH_HEADNODE_LOG:-warn}" HEADNODE_STATE_DIR="$d" HEADNODE_RUN_DIR="$d"
        "$HEADNODE_BIN" -c "$f" dhcp)
}

conf_dnsmasq() {
    local d=$1 f=$1/dnsmasq.conf mask
    mask=$([[ $3 -eq 24 ]] && echo 255.255.255.0 || echo 255.255.0.0)
    {
        echo "port=0"
        echo "interface=bs0"
        echo "bind-interfaces"
        echo "dhcp-authoritative"
        echo "no-ping"
        echo "quiet-dhcp"
        echo "log-facility=-"
        echo "dhcp-lease-max=1000000"
        echo "dhcp-leasefile=$5/dnsmasq.leases"
        echo "dhcp-option=option:router,$SERVER_IP"
        echo "dhcp-option=option:dns-server,$SERVER_IP"
        echo "dhcp-option=option:domain-name,bench.example"
        if [[ $4 -gt 0 ]]; then
            echo "dhcp-range=$POOL_START,$POOL_END,$mask,12h"
        else
            echo "dhcp-range=10.99.0.0,static,$mask,12h"
        fi
        awk -F'\t' '{ printf "dhcp-host=%s,%s,%s\n", $1, $2, $3 }' "$2"
    } > "$f"
    SERVER_CMD=(dnsmasq -k -C "$f" --user=root --group=root --pid-file="$d/dnsmasq.pid")
}

conf_dhcpd() {
    local d=$1 f=$1/dhcpd.conf mask net
    if [[ $3 -eq 24 ]]; then mask=255.255.255.0; else mask=255.255.0.0; fi
    net=10.99.0.0
    {
        echo "authoritative;"
        echo "ddns-update-style none;"
        echo "ping-check false;"
        echo "use-host-decl-names on;"
        echo "default-lease-time 43200;"
        echo "max-lease-time 86400;"
        echo "option routers $SERVER_IP;"
        echo "option domain-name-servers $SERVER_IP;"
        echo "option domain-name \"bench.example\";"
        echo "subnet $net netmask $mask {"
        if [[ $4 -gt 0 ]]; then echo "  range $POOL_START $POOL_END;"; fi
        echo "}"
        awk -F'\t' '{ printf "host %s { hardware ethernet %s; fixed-address %s; }\n", $3, $1, $2 }' "$2"
    } > "$f"
    : > "$5/dhcpd.leases"
    SERVER_CMD=(dhcpd -f -4 -q -cf "$f" -lf "$5/dhcpd.leases" -pf "$d/dhcpd.pid" bs0)
}

conf_kea() {
    local d=$1 f=$1/kea-dhcp4.json pools=""
    if [[ $4 -gt 0 ]]; then pools="\"pools\": [{\"pool\": \"$POOL_START - $POOL_END\"}],"; fi
    {
        cat <<EOF
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["bs0"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true, "name": "$5/kea-leases4.csv", "lfc-interval": 0},
  "valid-lifetime": 43200,
  "host-reservation-identifiers": ["hw-address"],
  "option-data": [
    {"name": "routers", "data": "$SERVER_IP"},
    {"name": "domain-name-servers", "data": "$SERVER_IP"},
    {"name": "domain-name", "data": "bench.example"}
  ],
  "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stderr"}], "severity": "WARN"}],
  "subnet4": [{
    "id": 1, "subnet": "10.99.0.0/$3", $pools
    "reservations": [
EOF
        awk -F'\t' '{ printf "%s{\"hw-address\": \"%s\", \"ip-address\": \"%s\", \"hostname\": \"%s\"}\n", (NR > 1 ? "," : ""), $1, $2, $3 }' "$2"
        echo "    ]}]}}"
    } > "$f"
    SERVER_CMD=(env KEA_PIDFILE_DIR="$d" KEA_LOCKFILE_DIR="$d" kea-dhcp4 -c "$f")
}

# ---------------------------------------------------------------- netns
SNS=""; CNS=""
make_netns() { # SERVER
    SNS="hn-bench-$1-s"; CNS="hn-bench-$1-c"
    for n in "$SNS" "$CNS"; do
        ip netns del "$n" 2>/dev/null || true
        ip netns add "$n"
        NETNS+=("$n")
        ip -n "$n" link set lo up
    done
    ip -n "$SNS" link add bs0 type veth peer name bc0 netns "$CNS"
    # headnode's config wants a public interface too; it stays inside the namespace.
    ip -n "$SNS" link add pub0 type veth peer name pub1
    ip -n "$SNS" addr add 192.0.2.1/24 dev pub0
    ip -n "$SNS" link set pub0 up
    ip -n "$SNS" link set pub1 up
}
address_netns() { # PREFIX
    ip -n "$SNS" addr flush dev bs0
    ip -n "$CNS" addr flush dev bc0
    ip -n "$SNS" addr add "$SERVER_IP/$1" dev bs0
    ip -n "$CNS" addr add "$RELAY_IP/$1" dev bc0
    ip -n "$SNS" link set bs0 up
    ip -n "$CNS" link set bc0 up
}
drop_netns() {
    ip netns del "$SNS" 2>/dev/null || true
    ip netns del "$CNS" 2>/dev/null || true
}

# ---------------------------------------------------------------- process
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
vm_hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
forget_pid() { local p keep=(); for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done; PIDS=("${keep[@]}"); }

SPID=""
# Start the server and time it: a probe in the client namespace sends a
# relayed DISCOVER every 2 ms from before the exec until an OFFER arrives.
start_server() { # LOG PROBE_MAC -> sets SPID, STARTUP
    local logf=$1 mac=$2 probe_out=$WORK/probe.out probe_err=$WORK/probe.err ppid t0 t1 i
    rm -f "$probe_out" "$probe_err"   # a stale "ready" would start the clock too early
    ip netns exec "$CNS" python3 "$TOOLS" probe "$SERVER_IP" "$RELAY_IP" "$mac" 60 >"$probe_out" 2>"$probe_err" &
    ppid=$!; PIDS+=("$ppid")
    for ((i = 0; i < 500; i++)); do grep -q ready "$probe_err" 2>/dev/null && break; sleep 0.01; done
    t0=$(date +%s.%N)
    ip netns exec "$SNS" "${SERVER_CMD[@]}" >"$logf" 2>&1 &
    SPID=$!; PIDS+=("$SPID")
    if ! wait "$ppid"; then
        forget_pid "$ppid"
        STARTUP=""
        return 1
    fi
    forget_pid "$ppid"
    t1=$(cat "$probe_out")
    STARTUP=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    kill -0 "$SPID" 2>/dev/null
}
stop_server() {
    [[ -n $SPID ]] || return 0
    kill "$SPID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    forget_pid "$SPID"
    SPID=""
}

# ---------------------------------------------------------------- perfdhcp
# run_perf OUTFILE MACS RATE|flood [extra perfdhcp args] -> sets DO_SENT ...,
# CPU_S (server CPU seconds during the run)
run_perf() {
    local outf=$1 macs=$2 rate=$3 c0 c1 ppid
    shift 3
    # -W: after the last request, wait as long as perfdhcp's drop time (1 s)
    # for replies, so the last second is judged like the rest of the run.
    local args=(-4 -p "$PERIOD" -W 1000000 -M "$macs")
    [[ $rate != flood ]] && args+=(-r "$rate")
    local attempt
    for attempt in 1 2 3; do
        c0=$(cpu_ticks "$SPID")
        timeout $((PERIOD + 20)) ip netns exec "$CNS" perfdhcp "${args[@]}" "$@" "$SERVER_IP" >"$outf" 2>&1 &
        ppid=$!; PIDS+=("$ppid")
        wait "$ppid" || true   # exit 3 means "some exchanges not completed": measured below
        forget_pid "$ppid"
        c1=$(cpu_ticks "$SPID")
        grep -q '^ERROR: running perfdhcp' "$outf" || break
        # perfdhcp could not start (seen once: port 67 still bound for a moment); say what holds it and retry
        log "  perfdhcp failed to start (attempt $attempt): $(grep '^ERROR' "$outf" | head -1); $(ip netns exec "$CNS" ss -Huap 'sport = :67' 2>/dev/null | tr -s ' ' | head -2)"
        sleep 1
    done
    CPU_S=$(awk -v a="$c0" -v b="$c1" -v t="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
    DO_SENT=0 DO_RECV=0 RA_SENT=0 RA_RECV=0 P50="" P99="" DO_P50="" DO_P99="" RA_P50="" RA_P99=""
    eval "$(python3 "$TOOLS" perfdhcp "$outf")"
    DORA_S=$(awk -v n="$RA_RECV" -v p="$PERIOD" 'BEGIN { printf "%.0f", n / p }')
    DROP_PCT=$(awk -v s="$DO_SENT" -v r="$RA_RECV" 'BEGIN { printf "%.2f", (s > 0) ? 100 * (1 - r / s) : 100 }')
    CPU_US=$(awk -v c="$CPU_S" -v n="$RA_RECV" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / n; else print "" }')
    # perfdhcp could not send at the asked rate (it is the bottleneck, not the server)
    BOUND=0
    [[ $rate != flood ]] && BOUND=$(awk -v s="$DO_SENT" -v r="$rate" -v p="$PERIOD" 'BEGIN { print ((s < 0.9 * r * p) ? 1 : 0) }')
    printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$SERVER" "$SCEN" "$rate" "$PERIOD" \
        "$DO_SENT" "$DO_RECV" "$RA_SENT" "$RA_RECV" "$DORA_S" "$DROP_PCT" "$CPU_S" "$CPU_US" "$BOUND" "${P50:-}" >>"$STEPS_CSV"
    log "  $SERVER $SCEN rate=$rate: $DORA_S DORA/s, drop $DROP_PCT %, cpu ${CPU_US:-?} us/DORA${P50:+, delay p50 $P50 ms p99 $P99 ms}$([[ $BOUND == 1 ]] && echo ' (perfdhcp-bound)')"
}
passes() { awk -v d="$DROP_PCT" -v m="$MAX_DROP_PCT" 'BEGIN { exit !(d < m) }'; }

# fsync calls per ACK, from a short separate run under strace (slows the server)
count_fsyncs() { # MACS -> FSYNC_PER_ACK
    local sf=$WORK/strace.out spid n
    FSYNC_PER_ACK=""
    command -v strace >/dev/null || return 0
    strace -f -c -e trace=fsync,fdatasync,sync_file_range -o "$sf" -p "$SPID" 2>/dev/null &
    spid=$!; PIDS+=("$spid")
    sleep 0.5
    local save=$STEPS_CSV; STEPS_CSV=/dev/null
    run_perf "$WORK/perf-fsync.out" "$1" 200
    STEPS_CSV=$save
    kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null || true; forget_pid "$spid"
    n=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range)$/ { s += $4 } END { print s + 0 }' "$sf")
    FSYNC_PER_ACK=$(awk -v n="$n" -v a="$RA_RECV" 'BEGIN { if (a > 0) printf "%.2f", n / a }')
}

# ---------------------------------------------------------------- one cell
bench_cell() { # SERVER SCENARIO
    SERVER=$1; SCEN=$2
    local nres prefix pool dir leasedir hosts macs best="" best_rate="" best_bound=0 fail="" r
    read -r nres prefix pool < <(scenario_params "$SCEN")
    dir=$WORK/$SERVER-$SCEN; mkdir -p "$dir"
    hosts=$WORK/hosts-$SCEN.tsv; macs=$WORK/macs-$SCEN.txt
    if [[ ! -f $hosts ]]; then
        gen_hosts "$nres" "$hosts"
        if [[ $pool -gt 0 ]]; then gen_pool_macs "$pool" "$macs"; else cut -f1 "$hosts" >"$macs"; fi
    fi
    if [[ $pool -gt 0 ]]; then leasedir=$dir; else leasedir=$SHM/$SERVER-$SCEN; mkdir -p "$leasedir"; fi
    "conf_$SERVER" "$dir" "$hosts" "$prefix" "$pool" "$leasedir"
    make_netns "$SERVER"
    address_netns "$prefix"
    log "$SERVER $SCEN: starting (${nres} reservations, pool clients ${pool})"
    local row_pre="$DATE,$MODE,$SERVER,$SCEN,$nres,$pool"
    if ! start_server "$dir/server.log" "$(head -1 "$macs")"; then
        log "$SERVER $SCEN: did not answer; probe and server log:"
        tail -3 "$WORK/probe.err" >&2 || true
        tail -5 "$dir/server.log" >&2 || true
        echo "$row_pre,failed$(printf ',%.0s' {1..17})" >>"$CSV"
        stop_server; drop_netns; return 0
    fi
    log "$SERVER $SCEN: answered after $STARTUP s (probe: $(tail -1 "$WORK/probe.err"))"
    local D_CPU="" D_P50="" D_P99="" D_DO50="" D_DO99="" D_RA50="" D_RA99="" D_RATE="" CPU_BEST="" DROP_BEST=""
    keep_delay() { D_RATE=$1; D_CPU=$CPU_US; D_P50=$P50; D_P99=$P99; D_DO50=$DO_P50; D_DO99=$DO_P99; D_RA50=$RA_P50; D_RA99=$RA_P99; }
    take_pass() { best=$DORA_S; best_rate=$1; best_bound=$BOUND; CPU_BEST=$CPU_US; DROP_BEST=$DROP_PCT; }
    for r in "${LADDER[@]}"; do
        if [[ $r -eq $DELAY_RATE ]]; then run_perf "$dir/perf-$r.out" "$macs" "$r" -x t; else run_perf "$dir/perf-$r.out" "$macs" "$r"; fi
        if passes; then
            take_pass "$r"
            [[ $r -eq $DELAY_RATE ]] && keep_delay "$r"
            [[ $BOUND -eq 1 ]] && break
        else
            fail=$r; break
        fi
    done
    if [[ -z $best_rate ]]; then
        for r in "${LADDER_DOWN[@]}"; do
            run_perf "$dir/perf-$r.out" "$macs" "$r"
            if passes; then take_pass "$r"; break; else fail=$r; fi
        done
    fi
    if [[ -n $fail && -n $best_rate ]]; then
        local lo=$best_rate hi=$fail mid i
        for ((i = 0; i < BISECT; i++)); do
            mid=$(( (lo + hi) / 2 / 25 * 25 ))
            [[ $mid -le $lo ]] && break
            run_perf "$dir/perf-$mid.out" "$macs" "$mid"
            if passes; then take_pass "$mid"; lo=$mid; else hi=$mid; fi
        done
    fi
    if [[ -z $D_RATE && -n $best_rate ]]; then
        run_perf "$dir/perf-delay.out" "$macs" "$best_rate" -x t
        keep_delay "$best_rate"
    fi
    run_perf "$dir/perf-flood.out" "$macs" flood
    local flood=$DORA_S flood_cpu=$CPU_US
    FSYNC_PER_ACK=""
    [[ $pool -gt 0 ]] && count_fsyncs "$macs"
    local rss; rss=$(vm_hwm_kb "$SPID" || echo "")
    if ! kill -0 "$SPID" 2>/dev/null; then log "$SERVER $SCEN: server exited during the run"; fi
    stop_server; drop_netns
    [[ -z $best_rate ]] && best="<${LADDER_DOWN[-1]}"
    echo "$row_pre,$STARTUP,$best_rate,$best,$DROP_BEST,$best_bound,$CPU_BEST,$flood,$flood_cpu,$D_RATE,$D_CPU,$D_P50,$D_P99,$D_DO50,$D_DO99,$D_RA50,$D_RA99,$rss,$FSYNC_PER_ACK" >>"$CSV"
}

# ---------------------------------------------------------------- table
print_table() { # CSV -> markdown table on stdout
    awk -F, 'NR == 1 { next }
    {
        srv = $3; scen = $4
        if ($7 == "failed") { printf "| %s | %s | failed to start or answer | | | | | | | |\n", scen, srv; next }
        rate = $9 ($11 == 1 ? "+" : "")
        rss = ($23 != "") ? sprintf("%.1f", $23 / 1024) : ""
        delay = ($17 != "") ? sprintf("%s / %s", $17, $18) : ""
        fs = ($24 != "") ? $24 : "-"
        at = ($15 != "" && $15 != 1000) ? sprintf(" (at %s/s)", $15) : ""
        printf "| %s | %s | %s | %s | %s | %s%s | %s | %s%s | %s | %s |\n", scen, srv, $7, rate, $13, $16, at, $12, delay, at, rss, fs
    }
    BEGIN {
        print "| scenario | server | start-up s | DORA/s (<1 % drop) | flood DORA/s | CPU us/DORA at 1000/s | CPU us/DORA at max rate | delay p50 / p99 ms at 1000/s | peak RSS MB | fsync/ACK |"
        print "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    }' "$1"
}

# ---------------------------------------------------------------- main
install_packages
[[ ,$SERVERS, == *,headnode,* ]] && headnode_binary
mkdir -p "$OUT"
DATE=$(date -u +%Y-%m-%dT%H:%MZ)
MODE=$([[ $QUICK -eq 1 ]] && echo quick || echo full)
STAMP=$(date -u +%Y%m%d-%H%M)
CSV=$OUT/dhcp-$MODE-$STAMP.csv
STEPS_CSV=$OUT/dhcp-$MODE-$STAMP-steps.csv
echo "date,mode,server,scenario,reservations,pool_clients,startup_s,best_rate,dora_s,drop_pct,perfdhcp_bound,cpu_us_per_dora,flood_dora_s,flood_cpu_us_per_dora,delay_rate,delay_cpu_us_per_dora,p50_ms,p99_ms,do_p50_ms,do_p99_ms,ra_p50_ms,ra_p99_ms,rss_peak_kb,fsync_per_ack" >"$CSV"
echo "server,scenario,rate,period_s,do_sent,do_recv,ra_sent,ra_recv,dora_s,drop_pct,cpu_s,cpu_us_per_dora,perfdhcp_bound,p50_ms" >"$STEPS_CSV"
log "mode $MODE, period ${PERIOD}s, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"

IFS=, read -r -a scen_list <<<"$SCENARIOS"
IFS=, read -r -a srv_list <<<"$SERVERS"
for scen in "${scen_list[@]}"; do
    for srv in "${srv_list[@]}"; do
        declare -F "conf_$srv" >/dev/null || { echo "dhcp.sh: unknown server $srv" >&2; exit 1; }
        bench_cell "$srv" "$scen"
    done
done

log "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "DHCP benchmark, $MODE mode, $DATE, $(nproc) cores, perfdhcp period ${PERIOD}s"
print_table "$CSV" | tee "$OUT/dhcp-$MODE-latest.md"
echo
echo "DORA/s: + = perfdhcp could not send faster (the server was not the limit)."
echo "CSV: $CSV (steps: $STEPS_CSV)"
