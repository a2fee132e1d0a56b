#!/usr/bin/env python3
"""Helpers for tests/bench/dhcp.sh (standard library only).

  probe SERVER GIADDR MAC TIMEOUT    relay a DISCOVER from GIADDR:67 to SERVER:67
                                     every 2 ms until an OFFER comes back; print
                                     the wall-clock time (time.time()) it arrived.
                                     Prints "ready" on stderr once the socket is bound.
  perfdhcp FILE                      parse a perfdhcp report into shell assignments
                                     (DO_SENT DO_RECV RA_SENT RA_RECV) and, when the
                                     report has `-x t` timestamps, delay percentiles
                                     in ms (DO_P50 DO_P99 RA_P50 RA_P99 P50 P99).
"""

import os
import random
import re
import socket
import struct
import sys
import time


def discover(xid: int, giaddr: str, mac: str) -> bytes:
    chaddr = bytes(int(b, 16) for b in mac.split(":"))
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, 1, 6, 1,  # BOOTREQUEST, Ethernet, hlen 6, hops 1 (relayed)
        xid, 0, 0,
        bytes(4), bytes(4), bytes(4), socket.inet_aton(giaddr),
        chaddr.ljust(16, b"\0"), bytes(64), bytes(128),
    )
    opts = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\x37\x04\x01\x03\x06\x0c" + b"\xff"
    return (head + opts).ljust(300, b"\0")


def is_offer(pkt: bytes, xid: int) -> bool:
    if len(pkt) < 244 or pkt[0] != 2 or struct.unpack("!I", pkt[4:8])[0] != xid:
        return False
    if pkt[236:240] != b"\x63\x82\x53\x63":
        return False
    i = 240
    while i < len(pkt) and pkt[i] != 255:
        if pkt[i] == 0:
            i += 1
            continue
        if i + 1 >= len(pkt):
            return False
        code, ln = pkt[i], pkt[i + 1]
        if code == 53 and ln == 1 and i + 2 < len(pkt):
            return pkt[i + 2] == 2
        i += 2 + ln
    return False


def probe(server: str, giaddr: str, mac: str, timeout: float) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for _ in range(200):  # the address may need a moment after the link comes up
        try:
            s.bind((giaddr, 67))
            break
        except OSError as e:
            err = e
            time.sleep(0.01)
    else:
        print(f"probe: cannot bind {giaddr}:67: {err}", file=sys.stderr)
        return 1
    s.settimeout(0.002)
    xid = random.getrandbits(32)
    pkt = discover(xid, giaddr, mac)
    print("ready", file=sys.stderr, flush=True)
    start = time.monotonic()
    deadline = start + timeout
    sent = 0
    while time.monotonic() < deadline:
        try:
            s.sendto(pkt, (server, 67))
            sent += 1
        except OSError:
            pass  # ICMP unreachable reported on a later call: not up yet
        end = time.monotonic() + 0.002
        while time.monotonic() < end:
            try:
                data, _ = s.recvfrom(4096)
            except (socket.timeout, BlockingIOError):
                break
            except OSError:
                continue
            if is_offer(data, xid):
                print(f"{time.time():.6f}")
                print(f"OFFER after {time.monotonic() - start:.3f} s, {sent} DISCOVER(s) sent", file=sys.stderr)
                return 0
    return 1


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


def parse_perfdhcp(path: str) -> int:
    text = open(path, encoding="utf-8", errors="replace").read()
    out = {}
    for tag, name in (("DO", "DISCOVER-OFFER"), ("RA", "REQUEST-ACK")):
        m = re.search(r"\*\*\*Statistics for: " + name + r"\*\*\*(.*?)(?=\*\*\*|\Z)", text, re.S)
        body = m.group(1) if m else ""
        for key, field in (("SENT", "sent packets"), ("RECV", "received packets")):
            f = re.search(field + r":\s*(\d+)", body)
            out[f"{tag}_{key}"] = int(f.group(1)) if f else 0
    delays = {}
    for tag, name in (("DO", "DISCOVER-OFFER"), ("RA", "REQUEST-ACK")):
        m = re.search(r"\*\*\*Timestamps for packets: " + name + r"\*\*\*(.*?)(?=\*\*\*|\Z)", text, re.S)
        vals = []
        if m:
            for a, b in re.findall(r"sent / received:\s*([\d.]+)\s*/\s*([\d.]+)", m.group(1)):
                vals.append((float(b) - float(a)) * 1000.0)
        delays[tag] = sorted(vals)
    if delays["DO"] or delays["RA"]:
        both = sorted(delays["DO"] + delays["RA"])
        for tag, vals in (("DO", delays["DO"]), ("RA", delays["RA"]), ("", both)):
            p = f"{tag}_" if tag else ""
            out[p + "P50"] = f"{percentile(vals, 0.50):.3f}"
            out[p + "P99"] = f"{percentile(vals, 0.99):.3f}"
    for k, v in out.items():
        print(f"{k}={v}")
    return 0


def main(argv) -> int:
    if len(argv) >= 5 and argv[0] == "probe":
        return probe(argv[1], argv[2], argv[3], float(argv[4]))
    if len(argv) == 2 and argv[0] == "perfdhcp":
        return parse_perfdhcp(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
