#!/usr/bin/env bash
# Install what headnode's tests and demo need on a fresh Debian 12 box.
# Idempotent: skips what is already there. Run as root.
set -euo pipefail
pkgs=(nftables iproute2 isc-dhcp-client udhcpc dhcpcd-base busybox-static ipvsadm
      python3 qemu-system-x86 ipxe-qemu ovmf cpio gzip procps curl tftp-hpa
      lintian debootstrap file man-db prometheus
      dnsmasq-base bind9-dnsutils)
missing=()
for p in "${pkgs[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if command -v rustup >/dev/null; then
    rustup target list --installed | grep -q x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl
fi
