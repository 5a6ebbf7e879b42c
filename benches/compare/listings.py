#!/usr/bin/env python3
"""Times LIST, MLSD and NLST of one directory on running servers.

Reuses client.py's listing(): from the command to the final 2xx, the data
read with recv_into one large buffer. With several servers the runs are
interleaved (one run of each server in turn), so a busy moment on a shared
machine hits them all alike. Prints, per verb and server, the median and
the min-max over RUNS runs, after one unmeasured warm-up run each; a
server that refuses a verb (vsftpd has no MLSD) is left out of that verb.

    benches/compare/listings.py SERVERS [PATH] [RUNS] [VERBS]
    benches/compare/listings.py before=2999,after=2998 /list 10 LIST,MLSD,NLST
"""
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import listing  # noqa: E402


def main():
    servers = []
    for item in sys.argv[1].split(","):
        name, _, port = item.rpartition("=")
        servers.append((name or port, int(port)))
    path = sys.argv[2] if len(sys.argv) > 2 else "/list"
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    verbs = (sys.argv[4] if len(sys.argv) > 4 else "LIST,MLSD,NLST").split(",")
    for verb in verbs:
        times = {}
        size = {}
        for name, port in servers:
            first = listing(port, verb, path)
            if first is None:
                print(f"{verb:5} {name:10} not supported")
                continue
            times[name] = []
            size[name] = first["bytes"]
        for _ in range(runs):
            for name, port in servers:
                if name in times:
                    times[name].append(listing(port, verb, path)["seconds"])
        for name in times:
            t = times[name]
            print(
                f"{verb:5} {name:10} median {statistics.median(t):.4f} s"
                f" ({min(t):.4f}-{max(t):.4f}), {runs} runs, {size[name]} bytes"
            )


if __name__ == "__main__":
    main()
