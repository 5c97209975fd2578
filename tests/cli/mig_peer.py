#!/usr/bin/env python3
"""A fake migration peer for the CLI tests (the wire: include/migrate.h).

  mig_peer.py refuse PATH   listen on PATH; take the hello, answer REFUSE
  mig_peer.py stall PATH    listen on PATH; accept the hello, take what
                            comes, never answer again (for cancel, timeout)
  mig_peer.py garbage PATH  connect to a destination at PATH, send bytes
                            that are no migration stream
  mig_peer.py badhello PATH connect, send a HELLO whose stream is damaged
  mig_peer.py cpurelay PATH DEST  listen on PATH; take the source's hello, show
                            its guest CPU features no host has, pass it to
                            the destination at DEST and its answer back
  mig_peer.py holdrelay PATH DEST pass the hello and the answer through, print
                            "held", then swallow what the source sends; pass
                            the destination's next record back and hang up
"""
import os
import socket
import struct
import sys
import threading
import time
import zlib

from snapshot_tool import SEC_CPU, all_features

HELLO, ACCEPT, REFUSE = 1, 2, 3


def record(rtype, payload=b""):
    return struct.pack("<II", rtype, len(payload)) + payload + struct.pack("<I", zlib.crc32(payload))


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def recv_record(s):
    rtype, length = struct.unpack("<II", recv_exact(s, 8))
    payload = recv_exact(s, length)
    recv_exact(s, 4)
    return rtype, payload


def listen(path):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o666)  # the source, jailed, connects as nobody
    srv.listen(1)
    srv.settimeout(30)
    conn, _ = srv.accept()
    srv.close()
    os.unlink(path)
    conn.settimeout(30)
    return conn


def relay(path, dest, mode):
    conn = listen(path)
    rtype, hello = recv_record(conn)
    assert rtype == HELLO
    hello = bytearray(hello)
    if mode == "cpurelay":
        all_features(hello, SEC_CPU)
    d = connect(dest)
    d.sendall(record(HELLO, bytes(hello)))
    rtype, why = recv_record(d)
    conn.sendall(record(rtype, why))
    if mode == "holdrelay":
        threading.Thread(target=drain, args=(conn,), daemon=True).start()
        print("held", flush=True)
        try:
            rtype, why = recv_record(d)
            conn.sendall(record(rtype, why))
        except (OSError, EOFError):
            pass
        conn.shutdown(socket.SHUT_RDWR)
    time.sleep(0.5)


def drain(conn):
    try:
        while conn.recv(1 << 16):
            pass
    except OSError:
        pass


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(100):
        try:
            s.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    else:
        s.connect(path)  # the last try says why
    s.settimeout(30)
    return s


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode in ("cpurelay", "holdrelay"):
        relay(path, sys.argv[3], mode)
        return
    if mode in ("refuse", "stall"):
        conn = listen(path)
        rtype, _ = recv_record(conn)
        assert rtype == HELLO
        if mode == "refuse":
            conn.sendall(record(REFUSE, b"no room for this guest"))
            time.sleep(0.5)
            return
        conn.sendall(record(ACCEPT))
        try:
            while conn.recv(1 << 16):
                pass
        except (OSError, EOFError):
            pass
        return
    s = connect(path)
    if mode == "garbage":
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    else:
        s.sendall(record(HELLO, b"VMMSTATE" + b"\0" * 40))
    time.sleep(1)


if __name__ == "__main__":
    main()
