#!/usr/bin/env python3
"""TFTP read client for tests/bench/tftp.sh: RFC 1350 with blksize (2348),
tsize and windowsize (7440), so every server is measured with the same
client. `N` clients fetch FILE at once (threads, blocking sockets); prints
one JSON line: bytes, seconds, ok, failed and the options the server took.

    tftp_client.py SERVER FILE BLKSIZE WINDOW N
"""
import json
import socket
import struct
import sys
import threading
import time


def fetch(server, name, blksize, window, result):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.settimeout(2.0)
    opts = [b"blksize", str(blksize).encode(), b"windowsize", str(window).encode(),
            b"tsize", b"0"]
    req = b"\x00\x01" + name.encode() + b"\x00octet\x00" + b"\x00".join(opts) + b"\x00"
    s.sendto(req, (server, 69))
    size = 0
    expect = 1
    since_ack = 0
    bs, win = 512, 1
    peer = None
    retries = 0
    while True:
        try:
            data, peer = s.recvfrom(70000)
        except socket.timeout:
            retries += 1
            if retries > 5 or peer is None:
                with result["lock"]:
                    result["failed"] += 1
                return
            # Re-ACK the last block in order: the server resends after it.
            s.sendto(struct.pack("!HH", 4, (expect - 1) & 0xFFFF), peer)
            since_ack = 0
            continue
        op = struct.unpack("!H", data[:2])[0]
        if op == 6:  # OACK: what the server took
            fields = data[2:-1].split(b"\x00")
            got = dict(zip(fields[::2], fields[1::2]))
            bs = int(got.get(b"blksize", 512))
            win = int(got.get(b"windowsize", 1))
            result["options"] = {k.decode(): v.decode() for k, v in got.items()}
            s.sendto(struct.pack("!HH", 4, 0), peer)
            continue
        if op == 5:
            with result["lock"]:
                result["failed"] += 1
                result["error"] = data[4:-1].decode(errors="replace")
            return
        if op != 3:
            continue
        block = struct.unpack("!H", data[2:4])[0]
        if block != expect & 0xFFFF:
            # Out of order (a loss): ACK what came in order, the server
            # sends on from there (RFC 7440).
            s.sendto(struct.pack("!HH", 4, (expect - 1) & 0xFFFF), peer)
            since_ack = 0
            continue
        retries = 0
        n = len(data) - 4
        size += n
        expect += 1
        since_ack += 1
        last = n < bs
        if last or since_ack == win:
            s.sendto(struct.pack("!HH", 4, block), peer)
            since_ack = 0
        if last:
            break
    with result["lock"]:
        result["ok"] += 1
        result["bytes"] += size


def main():
    server, name, blksize, window, n = sys.argv[1:6]
    result = {"ok": 0, "failed": 0, "bytes": 0, "lock": threading.Lock()}
    threads = [threading.Thread(target=fetch, args=(server, name, int(blksize), int(window), result))
               for _ in range(int(n))]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result["seconds"] = time.monotonic() - start
    del result["lock"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
