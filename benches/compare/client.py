#!/usr/bin/env python3
"""Benchmark client for benches/compare/run.sh: standard library only.

Control connections speak FTP over a raw socket (ftplib's per-line
overhead would cap logins/s); data connections are read with recv_into
into one large buffer and written with sendall of one large buffer, so
the client does no per-chunk Python work worth measuring.

Subcommands:
  baseline FILE               raw sendfile of FILE over loopback -> MB/s
  bench NAME PORT PID OUT     every metric for one server -> JSON in OUT
  table JSON...               the markdown table for the collected results
"""
import json
import multiprocessing
import os
import resource
import socket
import statistics
import sys
import time

HOST = "127.0.0.1"
BUF = 4 << 20
RUNS = int(os.environ.get("RUNS", "3"))
SIZE_MB = int(os.environ.get("SIZE_MB", "1024"))
LOGIN_WORKERS = int(os.environ.get("LOGIN_WORKERS", "20"))
LOGIN_SECONDS = float(os.environ.get("LOGIN_SECONDS", "5"))
IDLE_SESSIONS = int(os.environ.get("IDLE_SESSIONS", "200"))


class Control:
    """One FTP control connection: send a command, read a (multi-line) reply."""

    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.expect("220")

    def reply(self):
        first = None
        while True:
            while b"\n" not in self.buf:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("control connection closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.decode("latin-1").rstrip("\r")
            if first is None:
                first = line
                if len(line) >= 4 and line[3] == "-":
                    continue
                return line
            # RFC 959 §4.2: a multi-line reply ends with "code<SP>".
            if line[:3] == first[:3] and line[3:4] == " ":
                return first[:3] + " " + line[4:]

    def cmd(self, line):
        self.sock.sendall(line.encode("latin-1") + b"\r\n")
        return self.reply()

    def expect(self, code, line=None):
        r = self.reply() if line is None else self.cmd(line)
        if not r.startswith(code):
            raise RuntimeError(f"{line!r}: expected {code}, got {r!r}")
        return r

    def login(self):
        r = self.cmd("USER anonymous")
        if r.startswith("331"):
            r = self.cmd("PASS bench@example.org")
        if not r.startswith("230"):
            raise RuntimeError(f"login failed: {r!r}")

    def passive(self):
        """EPSV, else PASV; returns a connected data socket."""
        r = self.cmd("EPSV")
        if r.startswith("229"):
            port = int(r.split("(")[1].split("|")[3])
        else:
            r = self.expect("227", "PASV")
            nums = r.split("(")[1].split(")")[0].split(",")
            port = int(nums[4]) * 256 + int(nums[5])
        return socket.create_connection((HOST, port), timeout=60)

    def close(self):
        try:
            self.cmd("QUIT")
        except OSError:
            pass
        self.sock.close()


def drain(data):
    """Read a data connection to EOF into one reused buffer; returns bytes."""
    buf = bytearray(BUF)
    view = memoryview(buf)
    total = 0
    while True:
        n = data.recv_into(view)
        if not n:
            break
        total += n
    data.close()
    return total


# ---- server process tree: PSS and CPU ------------------------------------

def tree(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def pss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """utime+stime of the live tree plus reaped children (cutime+cstime)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except OSError:
            pass
    return total / tick


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- workloads -----------------------------------------------------------

def retr(port, pid, path):
    c = Control(port)
    c.login()
    c.expect("200", "TYPE I")
    data = c.passive()
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu(), time.perf_counter()
    c.sock.sendall(f"RETR {path}\r\n".encode())
    c.expect("1")
    n = drain(data)
    c.expect("2")
    dt = time.perf_counter() - t0
    cpu, own = cpu_seconds(pid) - cpu0, own_cpu() - own0
    c.close()
    gib = n / (1 << 30)
    return {"mbps": n / dt / 1e6, "bytes": n, "server_cpu_per_gib": cpu / gib,
            "client_cpu_per_gib": own / gib}


def stor(port, pid, path, size):
    block = bytes(BUF)
    c = Control(port)
    c.login()
    c.expect("200", "TYPE I")
    data = c.passive()
    t0 = time.perf_counter()
    c.sock.sendall(f"STOR {path}\r\n".encode())
    c.expect("1")
    sent = 0
    view = memoryview(block)
    while sent < size:
        chunk = view[: min(BUF, size - sent)]
        data.sendall(chunk)
        sent += len(chunk)
    data.close()
    c.expect("2")  # 226 only once the server has written it all
    dt = time.perf_counter() - t0
    c.cmd(f"DELE {path}")
    c.close()
    return {"mbps": sent / dt / 1e6}


def listing(port, verb, path):
    c = Control(port)
    c.login()
    data = c.passive()
    t0 = time.perf_counter()
    r = c.cmd(f"{verb} {path}")
    if not r.startswith("1"):
        data.close()
        c.close()
        return None
    n = drain(data)
    c.expect("2")
    dt = time.perf_counter() - t0
    c.close()
    return {"seconds": dt, "bytes": n}


def login_worker(port, deadline, queue):
    done = errors = 0
    while time.time() < deadline:
        try:
            c = Control(port, timeout=10)
            c.login()
            c.cmd("QUIT")
            c.sock.close()
            done += 1
        except (OSError, RuntimeError, ConnectionError):
            errors += 1
    queue.put((done, errors))


def logins(port):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    t0 = time.time()
    deadline = t0 + LOGIN_SECONDS
    procs = [ctx.Process(target=login_worker, args=(port, deadline, queue))
             for _ in range(LOGIN_WORKERS)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    dt = time.time() - t0
    done = sum(r[0] for r in results)
    return {"per_second": done / dt, "errors": sum(r[1] for r in results)}


def idle_memory(port, pid):
    time.sleep(0.5)
    before = pss_kib(pid)
    sessions = []
    for _ in range(IDLE_SESSIONS):
        c = Control(port)
        c.login()
        sessions.append(c)
    time.sleep(1.0)
    after = pss_kib(pid)
    for c in sessions:
        c.close()
    return {"kib_per_session": (after - before) / IDLE_SESSIONS,
            "pss_before_kib": before, "pss_after_kib": after}


def median_of(runs, key):
    values = [r[key] for r in runs if r is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench(name, port, pid, out):
    port, pid = int(port), int(pid)
    res = {"server": name}
    size = SIZE_MB << 20

    def step(label, fn):
        t0 = time.time()
        runs = [fn() for _ in range(RUNS)]
        print(f"  {name:10} {label:6} {time.time() - t0:6.1f}s  {runs[-1]}", file=sys.stderr)
        return runs

    # First, on a fresh server, so earlier workloads' heap growth does not
    # hide the sessions' memory.
    res["idle"] = idle_memory(port, pid)
    print(f"  {name:10} idle   {res['idle']}", file=sys.stderr)
    r = step("RETR", lambda: retr(port, pid, "/big.bin"))
    res["retr_mbps"] = median_of(r, "mbps")
    res["retr_server_cpu_per_gib"] = median_of(r, "server_cpu_per_gib")
    res["retr_client_cpu_per_gib"] = median_of(r, "client_cpu_per_gib")
    # A new name each run: pure-ftpd refuses anonymous overwrites and DELE.
    names = iter(range(RUNS))
    r = step("STOR", lambda: stor(port, pid, f"/up/stor-{name}-{next(names)}.bin", size))
    res["stor_mbps"] = median_of(r, "mbps")
    r = step("login", lambda: logins(port))
    res["logins_per_s"] = median_of(r, "per_second")
    res["login_errors"] = sum(x["errors"] for x in r)
    r = step("LIST", lambda: listing(port, "LIST", "/list"))
    res["list_s"] = median_of(r, "seconds")
    res["list_bytes"] = r[0]["bytes"] if r[0] else None
    r = step("MLSD", lambda: listing(port, "MLSD", "/list"))
    res["mlsd_s"] = median_of(r, "seconds")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# ---- raw sendfile baseline -------------------------------------------------

def baseline(path):
    """A child sendfile()s PATH over loopback; we recv_into like for RETR."""
    lsock = socket.create_server((HOST, 0))
    port = lsock.getsockname()[1]
    best = []
    for _ in range(RUNS):
        pid = os.fork()
        if pid == 0:
            conn, _ = lsock.accept()
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                off = 0
                while off < size:
                    off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)
            conn.close()
            os._exit(0)
        data = socket.create_connection((HOST, port))
        t0 = time.perf_counter()
        n = drain(data)
        dt = time.perf_counter() - t0
        os.waitpid(pid, 0)
        best.append(n / dt / 1e6)
    print(json.dumps({"sendfile_mbps": statistics.median(best), "min": min(best), "max": max(best)}))


def client_check():
    """Client ceiling: a child sendall()s from memory, we recv_into."""
    lsock = socket.create_server((HOST, 0))
    port = lsock.getsockname()[1]
    size = SIZE_MB << 20
    rates = []
    for _ in range(RUNS):
        pid = os.fork()
        if pid == 0:
            conn, _ = lsock.accept()
            view = memoryview(bytes(BUF))
            sent = 0
            while sent < size:
                conn.sendall(view)
                sent += BUF
            conn.close()
            os._exit(0)
        data = socket.create_connection((HOST, port))
        t0 = time.perf_counter()
        n = drain(data)
        rates.append(n / (time.perf_counter() - t0) / 1e6)
        os.waitpid(pid, 0)
    print(json.dumps({"client_recv_mbps": statistics.median(rates)}))


# ---- table -----------------------------------------------------------------

ROWS = [
    # label, key, higher is better, format
    ("RETR 1 client, MB/s", "retr_mbps", True, "{:,.0f}"),
    ("STOR 1 client, MB/s", "stor_mbps", True, "{:,.0f}"),
    ("logins/s (anonymous, 20 workers)", "logins_per_s", True, "{:,.0f}"),
    ("LIST of 10,000 entries, s", "list_s", False, "{:.3f}"),
    ("MLSD of 10,000 entries, s", "mlsd_s", False, "{:.3f}"),
    ("memory per idle logged-in session, KiB", "idle_kib", False, "{:,.1f}"),
    ("idle server PSS before any session, KiB", "idle_pss", False, "{:,.0f}"),
    ("server CPU per GiB RETR, s", "retr_server_cpu_per_gib", False, "{:.2f}"),
]


def spread(res, key, fmt):
    v = res.get(key)
    if not isinstance(v, dict) or v["min"] == v["max"]:
        return ""
    return " (" + fmt.format(v["min"]) + "–" + fmt.format(v["max"]) + ")"


def value(res, key):
    if key == "idle_kib":
        return res["idle"]["kib_per_session"]
    if key == "idle_pss":
        return res["idle"]["pss_before_kib"]
    v = res.get(key)
    return v["median"] if v else None


def table(paths):
    results = []
    for p in paths:
        with open(p) as f:
            results.append(json.load(f))
    names = [r["server"] for r in results]
    print("Cells: median of the runs (min–max).\n")
    print("| metric | " + " | ".join(names) + " | aioftpd / best peer |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, key, higher, fmt in ROWS:
        cells, ours, peers = [], None, []
        for r in results:
            v = value(r, key)
            cells.append("—" if v is None else fmt.format(v) + spread(r, key, fmt))
            if v is None:
                continue
            if r["server"] == "aioftpd":
                ours = v
            else:
                peers.append((v, r["server"]))
        ratio = "—"
        if ours is not None and peers:
            best, who = (max if higher else min)(peers)
            if best > 0:
                ratio = f"{ours / best:.2f}× ({who})"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"baseline": baseline, "client-check": client_check, "bench": bench,
     "table": lambda *a: table(a)}[cmd](*args)
