#!/usr/bin/env python3
"""Control-socket clients for test_cli.sh (busybox nc cannot speak Unix sockets).

  api_client.py split SOCK          send "sta", pause, then "tus\n": print the reply
  api_client.py idle SOCK N CMD     hold N silent connections open, send CMD on
                                    another: print the reply, then its latency in
                                    ms on stderr
  api_client.py halfclose SOCK CMD  send CMD with no newline, shut the writing
                                    side, print the reply
  api_client.py silent SOCK         connect, send nothing: print what comes back
                                    (the idle timeout's reply) and the seconds it took
"""
import socket
import sys
import time


def connect(path):
    # A blocking connect, as vmm ctl's: with a timeout set, Python connects
    # non-blocking and a full listen backlog (vmm not yet scheduled to
    # accept) fails at once with EAGAIN instead of waiting its turn.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(20)
    return s


def read_all(s):
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            return data.decode("ascii", "replace")
        data += chunk


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "split":
        s = connect(path)
        s.sendall(b"sta")
        time.sleep(0.3)
        s.sendall(b"tus\n")
        sys.stdout.write(read_all(s))
    elif mode == "idle":
        idle = [connect(path) for _ in range(int(sys.argv[3]))]
        time.sleep(0.2)
        t0 = time.monotonic()
        s = connect(path)
        s.sendall(sys.argv[4].encode() + b"\n")
        reply = read_all(s)
        ms = (time.monotonic() - t0) * 1000
        sys.stdout.write(reply)
        sys.stderr.write("%.1f\n" % ms)
        for c in idle:
            c.close()
    elif mode == "halfclose":
        s = connect(path)
        s.sendall(sys.argv[3].encode())
        s.shutdown(socket.SHUT_WR)
        sys.stdout.write(read_all(s))
    elif mode == "silent":
        t0 = time.monotonic()
        s = connect(path)
        reply = read_all(s)
        sys.stdout.write(reply.strip() + " %.0f\n" % (time.monotonic() - t0))
    else:
        sys.exit("unknown mode " + mode)


main()
