"""Memory a client that stops reading can pin (docs/performance.md).

Against a running daemon on 127.0.0.1:PORT with user alice/PASSWORD,
`max_connections_per_ip` of at least 50, a text file `text.txt` and a big
directory `many` in alice's tree:

    python3 benches/compare/slow_readers.py PID PORT PASSWORD ascii|stat

50 clients each start `TYPE A` + `RETR text.txt` (or `STAT many`) with a
4 KiB receive buffer and never read; prints the daemon's VmRSS before, with
them connected (3 s after the last one started), and the difference per
client.
"""
import re
import socket
import sys
import time


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])


pid, port, password, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
n = 50


def control():
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")

    def cmd(c):
        s.sendall(c.encode() + b"\r\n")
        while True:
            line = f.readline()
            if line[3:4] == b" ":
                return line

    f.readline()
    cmd("USER alice")
    cmd(f"PASS {password}")
    return s, f, cmd


time.sleep(0.5)
base = rss(pid)
keep = []
for _ in range(n):
    s, f, cmd = control()
    if kind == "ascii":
        cmd("TYPE A")
        reply = cmd("PASV").decode()
        nums = list(map(int, re.search(r"\((.*)\)", reply).group(1).split(",")))
        d = socket.socket()
        d.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        d.connect(("127.0.0.1", nums[4] * 256 + nums[5]))
        s.sendall(b"RETR text.txt\r\n")
        keep.append((s, f, d))
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"STAT many\r\n")
        keep.append((s, f))
time.sleep(3)
after = rss(pid)
print(f"{kind}: VmRSS before {base} KiB, with {n} stalled clients {after} KiB, "
      f"per client {(after - base) / n:.0f} KiB")
