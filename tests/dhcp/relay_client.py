#!/usr/bin/env python3
"""A scripted DHCP client that speaks as a relay agent on the LAN (giaddr set,
replies come back to our port 67), so tests can drive exact exchanges without
raw sockets. Used by tests/it/dhcp_pool.rs inside a network namespace.

usage: relay_client.py SERVER RELAY_IP COMMAND ...
  dora MAC [renew]    DISCOVER/OFFER/REQUEST/ACK (then a renewal); prints
                      "ACK ip", "NAK", or "NONE" per step
  request MAC IP      a REQUEST in INIT-REBOOT for IP; prints ACK ip / NAK / NONE
  release MAC IP      RELEASE (no reply expected)
  inform MAC IP       INFORM from IP; prints "ACK" and the option codes
  loop N              DORA for N random MACs, one "mac ip" line per ACK (flushed)
  garbage N           N malformed packets of every kind
  flood MAC N         N DISCOVERs from one MAC, as fast as possible
"""
import os
import random
import socket
import struct
import sys
import time

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8

server = sys.argv[1]
relay = sys.argv[2]
cmd = sys.argv[3]
args = sys.argv[4:]

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind((relay, 67))


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def packet(mtype, mac, xid, opts=b"", ciaddr="0.0.0.0"):
    hdr = struct.pack(
        "!BBBBIHH4s4s4s4s",
        1, 1, 6, 1, xid, 0, 0,
        socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, socket.inet_aton(relay),
    )
    hdr += mac_bytes(mac) + b"\0" * 10 + b"\0" * 192 + MAGIC
    body = bytes([53, 1, mtype]) + bytes([55, 4, 1, 3, 6, 15]) + opts + b"\xff"
    return hdr + body


def ip_opt(code, ip):
    return bytes([code, 4]) + socket.inet_aton(ip)


def wait(xid, timeout=2.0):
    """The reply to xid: (type, yiaddr, {code: bytes}) or None."""
    end = time.time() + timeout
    while True:
        left = end - time.time()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            return None
        if len(data) < 240 or data[0] != 2:
            continue
        if struct.unpack("!I", data[4:8])[0] != xid:
            continue
        opts, i = {}, 240
        while i < len(data) and data[i] != 255:
            if data[i] == 0:
                i += 1
                continue
            code, ln = data[i], data[i + 1]
            opts[code] = opts.get(code, b"") + data[i + 2 : i + 2 + ln]
            i += 2 + ln
        return opts.get(53, b"\0")[0], socket.inet_ntoa(data[16:20]), opts


def send(p):
    sock.sendto(p, (server, 67))


def dora(mac, retries=3):
    for _ in range(retries):
        xid = random.getrandbits(32)
        send(packet(DISCOVER, mac, xid))
        r = wait(xid)
        if r is None or r[0] != OFFER:
            continue
        ip = r[1]
        send(packet(REQUEST, mac, xid, ip_opt(50, ip) + ip_opt(54, server)))
        r = wait(xid, 5.0)
        if r is None:
            continue
        return ("ACK", r[1]) if r[0] == ACK else ("NAK", None)
    return ("NONE", None)


def show(res):
    print(res[0] + (" " + res[1] if res[1] else ""), flush=True)


if cmd == "dora":
    res = dora(args[0])
    show(res)
    if len(args) > 1 and args[1] == "renew" and res[0] == "ACK":
        xid = random.getrandbits(32)
        send(packet(REQUEST, args[0], xid, ciaddr=res[1]))
        r = wait(xid)
        show(("NONE", None) if r is None else (("ACK", r[1]) if r[0] == ACK else ("NAK", None)))
elif cmd == "request":
    xid = random.getrandbits(32)
    send(packet(REQUEST, args[0], xid, ip_opt(50, args[1])))
    r = wait(xid)
    show(("NONE", None) if r is None else (("ACK", r[1]) if r[0] == ACK else ("NAK", None)))
elif cmd == "release":
    send(packet(RELEASE, args[0], random.getrandbits(32), ip_opt(54, server), ciaddr=args[1]))
elif cmd == "inform":
    xid = random.getrandbits(32)
    send(packet(INFORM, args[0], xid, ciaddr=args[1]))
    r = wait(xid)
    if r is None:
        print("NONE")
    else:
        print("ACK" if r[0] == ACK else "OTHER", r[1], " ".join(str(c) for c in r[2]))
elif cmd == "loop":
    for _ in range(int(args[0])):
        mac = "02:" + ":".join("%02x" % random.getrandbits(8) for _ in range(5))
        res = dora(mac, retries=1)
        if res[0] == "ACK":
            print(mac, res[1], flush=True)
elif cmd == "garbage":
    good = packet(DISCOVER, "02:00:00:00:00:01", 1)
    kinds = [
        good[:100],                                # truncated
        b"\x02" + good[1:],                        # a reply, not a request
        good[:2] + b"\xc8" + good[3:],             # hlen 200
        good[:236] + b"\0\0\0\0" + good[240:],     # bad cookie
        good[:240] + bytes([53, 1, 1, 6, 200, 1]), # option past the end
        good[:240] + b"\xff",                      # no message type (BOOTP)
        good[:240] + bytes([53, 1, 5, 255]),       # an ACK sent to a server
    ]
    for i in range(int(args[0])):
        if i % 8 == 7:
            send(os.urandom(random.randrange(0, 600)))
        else:
            send(kinds[i % 7])
elif cmd == "flood":
    p = packet(DISCOVER, args[0], 7)
    for _ in range(int(args[1])):
        send(p)
else:
    sys.exit("unknown command " + cmd)
