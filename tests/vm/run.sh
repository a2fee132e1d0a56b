#!/usr/bin/env bash
# Boot a real IPVS kernel (Debian's linux-image-*-cloud-amd64) under QEMU/TCG
# with a busybox initramfs holding the static headnode, ipvsadm, nft and ip,
# and run a scenario inside it (in network namespaces inside the VM):
#
#   tests/vm/run.sh            the origin scenario (tests/vm/origin.sh)
#   tests/vm/run.sh bench      the IPVS benchmark (tests/bench/ipvs.sh)
#   tests/vm/run.sh health     the health-check benchmark against keepalived
#                              (tests/bench/health.sh; 2 vCPUs; real servers:
#                              $HEADNODE_BENCH_REALS, 2,000 by default)
#   tests/vm/run.sh powerloss  DHCP under load, qemu killed at random moments
#                              (tests/vm/powerloss.sh; HEADNODE_POWERLOSS_ROUNDS,
#                              default 20): no acknowledged lease may be lost
#   tests/vm/run.sh ha         two head nodes with Debian's keepalived: takeovers
#                              measured, split brain (tests/vm/ha.sh; 2 vCPUs)
#
# Prints the scenario's "N passed, M failed" and exits non-zero on failure.
# Downloads are cached under tests/vm/cache (gitignored). Needs: apt-get,
# dpkg-deb, qemu-system-x86_64, busybox-static, cpio, ipvsadm, nftables
# (tests/setup.sh installs them). Nothing on the host is changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-origin}
case $mode in origin | bench | health | powerloss | ha) ;; *) echo "usage: $0 [origin|bench|health|powerloss|ha]" >&2; exit 64 ;; esac
# TCG boots in seconds; the limit is for a hung guest.
limit=${HEADNODE_VM_TIMEOUT:-420}
profile=${HEADNODE_VM_PROFILE:-release}
cache=tests/vm/cache
mkdir -p "$cache"

for prog in qemu-system-x86_64 busybox cpio ipvsadm nft ip dpkg-deb apt-get mkfs.ext4; do
    command -v "$prog" >/dev/null || { echo "vm: $prog missing (run tests/setup.sh)" >&2; exit 2; }
done

# 1. The kernel: the package the cloud-amd64 meta-package points at.
deb=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $deb ]]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [[ -n $pkg ]] || { echo "vm: no linux-image-cloud-amd64 in apt (apt-get update?)" >&2; exit 2; }
    (cd "$cache" && apt-get download -q "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb | sort -V | tail -1)
fi
kdir=$cache/kernel-$(basename "$deb" .deb)
if [[ ! -d $kdir ]]; then
    rm -rf "$kdir.tmp" && mkdir -p "$kdir.tmp"
    dpkg-deb -x "$deb" "$kdir.tmp"
    mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-*)
kver=$(basename "$(ls -d "$kdir"/lib/modules/*)")

# 2. The static headnode.
target=x86_64-unknown-linux-musl
rustup target list --installed 2>/dev/null | grep -q $target || rustup target add $target
if [[ $profile == release ]]; then
    cargo build --quiet --release --target $target
    bin=${CARGO_TARGET_DIR:-target}/$target/release/headnode
else
    cargo build --quiet --target $target
    bin=${CARGO_TARGET_DIR:-target}/$target/debug/headnode
fi

# 3. The initramfs.
root=$(mktemp -d /tmp/headnode-vm.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,etc,test,srv}
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $(busybox --list); do
    case $applet in ip | nft | ipvsadm) continue ;; esac  # the real ones are below
    [[ -e $root/bin/$applet ]] || ln -s busybox "$root/bin/$applet"
done
ln -sf ../bin/busybox "$root/sbin/modprobe"   # the kernel's module autoloader
ln -sf /proc/self/fd/0 "$root/dev/stdin"      # nft -f /dev/stdin (the nftables crate)
mkdir -p "$root/var" && ln -s /run "$root/var/run"     # ip netns keeps its mounts there
echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"  # keepalived runs its scripts as root
echo 'root:x:0:' >"$root/etc/group"
cp "$bin" "$root/bin/headnode"
for prog in ipvsadm nft ip; do
    path=$(command -v $prog)
    cp "$path" "$root/sbin/$prog"
    for lib in $(ldd "$path" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
# The modules IPVS, nftables, veth and bridges need, with their index files.
mods=$kdir/lib/modules/$kver
dst=$root/lib/modules/$kver
mkdir -p "$dst"
cp "$mods"/modules.{builtin,builtin.modinfo,order} "$dst"/
(cd "$mods" && find kernel/net/netfilter kernel/net/ipv4 kernel/net/ipv6 kernel/net/bridge \
    kernel/net/802 kernel/net/llc kernel/drivers/net/veth.ko kernel/drivers/net/dummy.ko \
    kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko kernel/lib kernel/crypto \
    -name '*.ko*' 2>/dev/null) | while read -r m; do
    mkdir -p "$dst/$(dirname "$m")"
    cp "$mods/$m" "$dst/$m"
done
# The package ships no index (its postinst runs depmod); busybox modprobe
# needs modules.dep, and modules.alias for the kernel's autoload requests.
busybox depmod -b "$root" "$kver"
[[ -s $dst/modules.dep && -s $dst/modules.alias ]] || { echo "vm: depmod made no index" >&2; exit 2; }
if [[ $mode == health || $mode == ha ]]; then
    # keepalived (Debian's, and the libraries it needs that the host may
    # lack) runs only inside the guest, in the scenario's namespaces.
    ka=$cache/keepalived-root
    if [[ ! -x $ka/usr/sbin/keepalived ]]; then
        rm -rf "$ka.tmp" && mkdir -p "$ka.tmp"
        (cd "$ka.tmp" && apt-get download -q keepalived libsnmp40 libpci3 libwrap0 2>&1 \
            | grep -v '^W: Download is performed unsandboxed' || true)
        for d in "$ka.tmp"/*.deb; do dpkg-deb -x "$d" "$ka.tmp"; done
        rm -f "$ka.tmp"/*.deb
        mv "$ka.tmp" "$ka"
    fi
    cp "$ka/usr/sbin/keepalived" "$root/usr/sbin/keepalived"
    extra=$ka/usr/lib/x86_64-linux-gnu:$ka/lib/x86_64-linux-gnu
    for lib in $(LD_LIBRARY_PATH=$extra ldd "$ka/usr/sbin/keepalived" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
        case $lib in "$ka"/*) to=${lib#"$ka"} ;; *) to=$lib ;; esac
        mkdir -p "$root$(dirname "$to")"
        cp -L "$lib" "$root$to"
    done
    mkdir -p "$root/etc/keepalived"
fi
if [[ $mode == health ]]; then
    rustc --edition 2024 -O --target $target tests/bench/health_listener.rs -o "$root/test/health_listener"
    cp tests/bench/health.sh "$root/test/"
fi
if [[ $mode == ha ]]; then
    rustc --edition 2024 -O --target $target tests/vm/ha_tool.rs -o "$root/test/ha_tool"
    cp tests/vm/ha.sh "$root/test/"
fi
cp tests/vm/init "$root/init"
cp tests/vm/origin.sh tests/vm/powerloss.sh tests/bench/ipvs.sh tests/udhcpc.script "$root/test/"
cp fixtures/origin/headnode.toml "$root/test/origin.toml"
chmod +x "$root/init" "$root"/test/*.sh
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$root.cpio.gz"
trap 'rm -rf "$root" "$root.cpio.gz"' EXIT

# 4p. Power loss: boot, load, kill qemu at a random moment, boot again on the
# same disk and check; ROUNDS kills, then one last boot that only checks.
powerloss() {
    local rounds=${HEADNODE_POWERLOSS_ROUNDS:-20}
    # Killing qemu and lines not found are expected here: check by hand.
    set +e
    # On a real file system: cache=none opens the image with O_DIRECT.
    work=$(mktemp -d /tmp/headnode-powerloss.XXXXXX)
    trap 'rm -rf "$root" "$root.cpio.gz" "$work"' EXIT
    truncate -s 64M "$work/disk.img"
    mkfs.ext4 -q -F "$work/disk.img"
    : >"$work/acked"
    # TCG, as for the other scenarios: KVM hung on the (virtual) build host.
    local accel=(-accel tcg -cpu max)
    local checked=0 failed=0 acked_total=0 started=$SECONDS r
    echo "vm: power loss, $rounds rounds ($(basename "$vmlinuz"), ${accel[1]})"
    for ((r = 1; r <= rounds + 1; r++)); do
        local load=1
        ((r <= rounds)) || load=0
        # The leases acknowledged in the round before, for the guest to check.
        cp "$work/acked" "$work/acked.img"
        truncate -s '>1M' "$work/acked.img"
        truncate -s '%4096' "$work/acked.img"
        local log=$work/round-$r.log
        qemu-system-x86_64 "${accel[@]}" -m 1024 -smp 1 -nographic -no-reboot \
            -kernel "$vmlinuz" -initrd "$root.cpio.gz" \
            -drive "file=$work/disk.img,format=raw,if=virtio,cache=none" \
            -drive "file=$work/acked.img,format=raw,if=virtio,cache=none,readonly=on" \
            -append "console=ttyS0 quiet panic=-1 hn.mode=powerloss hn.round=$r hn.load=$load" \
            </dev/null >"$log" 2>&1 &
        local qemu=$! i
        # Under load, pull the plug 0.2-3 s after the first lease was
        # acknowledged (syncs and ACKs are then in flight); the last boot
        # powers off by itself.
        for ((i = 0; i < 1200; i++)); do
            kill -0 $qemu 2>/dev/null || break
            ((load)) && grep -aq '^ACKED ' "$log" 2>/dev/null && break
            sleep 0.1
        done
        if ((load)); then
            local ms=$((RANDOM % 2800 + 200))
            sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        fi
        kill -9 $qemu 2>/dev/null
        wait $qemu 2>/dev/null
        tr -d '\r' <"$log" >"$log.txt"
        local what="" n=0 m=0 line
        if ((r > 1)); then
            line=$(grep -aE '^CHECKED [0-9]+ acknowledged, [0-9]+ missing$' "$log.txt" || true)
            if [[ -z $line ]]; then
                what+=" no check result;"
            else
                n=$(awk '{print $2}' <<<"$line")
                m=$(awk '{print $4}' <<<"$line")
                checked=$((checked + n))
                ((m == 0)) || what+=" $m of $n acknowledged leases missing;"
            fi
        fi
        grep -aq '^START ok' "$log.txt" || what+=" the server did not start cleanly;"
        # Only whole lines: a line cut by the kill ends without " .".
        grep -aE '^ACKED [0-9a-f:]{17} [0-9.]+ \.$' "$log.txt" | awk '{print $2, $3}' >"$work/acked"
        local a
        a=$(wc -l <"$work/acked")
        acked_total=$((acked_total + a))
        if [[ -n $what ]]; then
            failed=$((failed + 1))
            echo "powerloss: round $r FAILED:$what"
            grep -aE '^(MISSING|START|powerloss|CHECKED)' "$log.txt" | head -20
            ((r > 1)) || { tail -30 "$log.txt"; return 1; }
        else
            echo "powerloss: round $r: $n checked, 0 missing; $a acknowledged before the kill"
        fi
    done
    echo "powerloss: qemu killed $rounds times under load; $checked acknowledged leases checked after the kills ($acked_total acknowledged), $((SECONDS - started)) s"
    echo "$((rounds + 1 - failed)) passed, $failed failed"
    ((failed == 0 && checked > 0))
}
if [[ $mode == powerloss ]]; then
    powerloss
    exit
fi

# 4. Boot. The guest prints "N passed, M failed" and powers off.
echo "vm: booting $(basename "$vmlinuz") ($mode, limit ${limit}s)"
log=$(mktemp /tmp/headnode-vm-log.XXXXXX)
trap 'rm -rf "$root" "$root.cpio.gz" "$log"' EXIT
set +e
# The health benchmark (checkers, listener) and the two head nodes get a vCPU more.
smp=1
[[ $mode == health || $mode == ha ]] && smp=2
timeout "$limit" qemu-system-x86_64 -accel tcg -cpu max -smp $smp -m 1024 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$root.cpio.gz" \
    -append "console=ttyS0 quiet panic=-1 hn.mode=$mode hn.reals=${HEADNODE_BENCH_REALS:-2000}" </dev/null | tr -d '\r' | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [[ $status -eq 124 ]]; then
    echo "vm: timed out after ${limit}s"
    exit 1
fi
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
[[ -n $summary ]] || { echo "vm: the guest printed no result"; exit 1; }
failed=$(echo "$summary" | awk '{print $3}')
[[ $failed -eq 0 ]]
