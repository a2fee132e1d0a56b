#!/usr/bin/env bash
# A node network-boots from headnode. In network namespaces (nothing on the
# host's interfaces): `headnode run` serves DHCP and TFTP on its LAN, with
# its firewall loaded; a disk-less QEMU guest (-boot n, Debian's iPXE ROM)
# on a tap device bridged to that LAN gets an address, is handed boot.ipxe
# because it says it is iPXE (option 77), loads a kernel and an initramfs
# by TFTP, boots, and its init leases an address again and prints the line
# this script waits for. Once with BIOS firmware, once with UEFI (OVMF).
#
#   tests/vm/pxe.sh     prints "pxe: passed" and exits 0, or says what failed
#
# Needs root, qemu-system-x86_64, ipxe-qemu, busybox-static, cpio, apt-get
# and dpkg-deb (tests/setup.sh installs them) and ovmf. The kernel is the one
# tests/vm/run.sh uses (cached in tests/vm/cache).
set -euo pipefail
cd "$(dirname "$0")/../.."
limit=${HEADNODE_PXE_TIMEOUT:-240}
cache=tests/vm/cache
# The NIC ROM qemu loads for virtio-net (from its firmware path; naming it
# with romfile= made this qemu skip it): BIOS and UEFI iPXE in one.
rom=/usr/lib/ipxe/qemu/efi-virtio.rom
[[ $(id -u) -eq 0 ]] || { echo "pxe: needs root (namespaces, tap)" >&2; exit 2; }
for prog in qemu-system-x86_64 busybox cpio ip dpkg-deb apt-get cargo; do
    command -v "$prog" >/dev/null || { echo "pxe: $prog missing (run tests/setup.sh)" >&2; exit 2; }
done
[[ -r $rom ]] || { echo "pxe: $rom missing (apt-get install ipxe-qemu)" >&2; exit 2; }
mkdir -p "$cache"

# 1. The kernel: the package linux-image-cloud-amd64 points at (as run.sh).
deb=$(ls "$cache"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
if [[ -z $deb ]]; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    [[ -n $pkg ]] || { echo "pxe: no linux-image-cloud-amd64 in apt (apt-get update?)" >&2; exit 2; }
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

# 2. headnode.
cargo build --quiet --bin headnode
bin=${CARGO_TARGET_DIR:-target}/debug/headnode

work=$(mktemp -d /tmp/headnode-pxe.XXXXXX)
head=hn-pxe-$$-head
node=hn-pxe-$$-node
daemon=
qemu=
cleanup() {
    [[ -n $qemu ]] && kill "$qemu" 2>/dev/null || true
    [[ -n $daemon ]] && kill "$daemon" 2>/dev/null || true
    wait 2>/dev/null || true
    ip netns del "$head" 2>/dev/null || true
    ip netns del "$node" 2>/dev/null || true
    rm -rf "/etc/netns/$head" "/etc/netns/$node" "$work"
}
trap cleanup EXIT

# 3. What the node boots: the kernel, a busybox initramfs with the virtio
#    network modules, and the iPXE script.
tftp=$work/tftp
rd=$work/initrd
mkdir -p "$tftp" "$rd"/{bin,sbin,proc,sys,dev,etc,lib/modules/"$kver"}
cp "$vmlinuz" "$tftp/vmlinuz"
cp "$(command -v busybox)" "$rd/bin/busybox"
for applet in $(busybox --list); do
    [[ -e $rd/bin/$applet ]] || ln -s busybox "$rd/bin/$applet"
done
mods=$kdir/lib/modules/$kver
cp "$mods"/modules.{builtin,builtin.modinfo,order} "$rd/lib/modules/$kver/"
(cd "$mods" && find kernel/drivers/virtio kernel/drivers/net/virtio_net.ko \
    kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko -name '*.ko*') |
    while read -r m; do
        mkdir -p "$rd/lib/modules/$kver/$(dirname "$m")"
        cp "$mods/$m" "$rd/lib/modules/$kver/$m"
    done
busybox depmod -b "$rd" "$kver"
cat >"$rd/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
modprobe virtio_pci
modprobe virtio_net
ip link set lo up
ip link set eth0 up
if udhcpc -i eth0 -n -q -t 5 -T 2 -s /bin/lease >/dev/null 2>&1; then
    echo "headnode-pxe: node booted over the network: kernel $(uname -r), $(cat /tmp/lease)"
else
    echo "headnode-pxe: node booted but got no address"
fi
poweroff -f
EOF
cat >"$rd/bin/lease" <<'EOF'
#!/bin/sh
[ "$1" = bound ] && echo "address $ip from $serverid" >/tmp/lease
exit 0
EOF
mkdir -p "$rd/tmp"
chmod +x "$rd/init" "$rd/bin/lease"
(cd "$rd" && find . | cpio -o -H newc --quiet | gzip -1) >"$tftp/initrd.gz"
# initrd= names the image for the kernel's EFI stub (UEFI); BIOS ignores it.
cat >"$tftp/boot.ipxe" <<'EOF'
#!ipxe
echo headnode-pxe: iPXE runs boot.ipxe
kernel tftp://192.168.1.254/vmlinuz initrd=initrd.gz console=ttyS0 panic=-1 quiet
initrd tftp://192.168.1.254/initrd.gz
boot
EOF
chmod -R a+rX "$tftp"

# 4. The namespaces: the head node (eth1 a stand-in public side, eth0 its LAN)
#    and the node's, where eth0's peer and the guest's tap share a bridge.
for ns in "$head" "$node"; do
    ip netns add "$ns"
    mkdir -p "/etc/netns/$ns" && : >"/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up
done
# A veth pair whose far end stays in the namespace (no dummy module here).
ip -n "$head" link add eth1 type veth peer name wan0
ip -n "$head" link set wan0 up
ip -n "$head" addr add 203.0.113.210/24 dev eth1
ip -n "$head" link set eth1 up
ip -n "$head" route add default via 203.0.113.253 dev eth1
ip link add "hnpxe$$a" type veth peer name "hnpxe$$b"
ip link set "hnpxe$$a" netns "$head"
ip link set "hnpxe$$b" netns "$node"
ip -n "$head" link set "hnpxe$$a" name eth0
ip -n "$head" addr add 192.168.1.254/24 dev eth0
ip -n "$head" link set eth0 up
ip -n "$node" link add br0 type bridge
ip -n "$node" link set "hnpxe$$b" master br0 up
ip netns exec "$node" ip tuntap add dev tap0 mode tap
ip -n "$node" link set tap0 master br0 up
ip -n "$node" link set br0 up

# 5. headnode run: DHCP (iPXE gets boot.ipxe), TFTP, the firewall.
cat >"$work/headnode.toml" <<EOF
[interfaces.public]
name = "eth1"
address = "203.0.113.210/24"

[interfaces.private]
name = "eth0"
address = "192.168.1.254/24"

[dhcp]
lease_file = "$work/leases"
next_server = "192.168.1.254"
pool = { start = "192.168.1.100", end = "192.168.1.150" }

[[dhcp.boot]]
user_class = "iPXE"
filename = "boot.ipxe"

[[dhcp.boot]]
arch = "bios"
filename = "undionly.kpxe"

[tftp]
root = "$tftp"
EOF
ip netns exec "$head" env HEADNODE_STATE_DIR="$work/state" HEADNODE_RUN_DIR="$work/run" \
    "$bin" -c "$work/headnode.toml" run >"$work/daemon.log" 2>&1 &
daemon=$!
for _ in $(seq 150); do
    grep -q ' ready' "$work/daemon.log" && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
grep -q ' ready' "$work/daemon.log" || { echo "pxe: headnode did not start:"; cat "$work/daemon.log"; exit 1; }

# 6. Boot the node: BIOS (SeaBIOS), then UEFI (OVMF); in both the NIC's
#    ROM is iPXE, which asks DHCP with arch 0 or 7 and user class iPXE.
boot_guest() { # mode mac
    local mode=$1 mac=$2 firmware=() status booted log=$work/console-$1.log
    if [[ $mode == uefi ]]; then
        cp "$ovmf_vars" "$work/vars.fd"
        firmware=(-drive "if=pflash,format=raw,readonly=on,file=$ovmf_code"
                  -drive "if=pflash,format=raw,file=$work/vars.fd")
    fi
    echo "pxe: booting a disk-less $mode guest from headnode (limit ${limit}s)"
    ip netns exec "$node" timeout "$limit" qemu-system-x86_64 -accel tcg -m 512 -smp 1 \
        -nographic -no-reboot -boot n "${firmware[@]}" \
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=n0,bootindex=1,mac="$mac" \
        </dev/null >"$log" 2>&1 &
    qemu=$!
    set +e
    wait "$qemu"
    status=$?
    set -e
    qemu=
    tr -d '\r' <"$log" | grep -a -E 'headnode-pxe|Kernel panic' | head -5 || true
    booted=$(tr -d '\r' <"$log" | grep -a -m1 'headnode-pxe: node booted over the network' || true)
    echo "pxe: $mode: qemu exited with $status"
    if [[ -z $booted || $booted != *"address 192.168.1."* ]]; then
        echo "pxe: FAILED: the $mode guest did not boot from headnode; its console:"
        tr -d '\r' <"$log" | tail -40
        echo "pxe: headnode's log:"
        tail -30 "$work/daemon.log"
        exit 1
    fi
}
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
[[ -r $ovmf_code && -r $ovmf_vars ]] || { echo "pxe: OVMF missing (apt-get install ovmf)" >&2; exit 2; }
boot_guest bios 52:54:00:70:78:01
boot_guest uefi 52:54:00:70:78:02
grep -E 'TFTP sent|DHCPACK' "$work/daemon.log" | tail -12 || true
echo "pxe: passed"
