#!/usr/bin/env python3
"""Benchmark client for benches/compare/run.sh: standard library only, plus
the Rust load generator (examples/loadgen.rs, its path in LOADGEN).

Logins, small files and FTPS RETR (and the TLS reader's ceiling) run in
the load generator: in Python the client was the bottleneck there (a
process per worker, most of a core each, and a TLS reader near 1 GB/s).
Here, control connections speak FTP over a raw socket (ftplib's per-line
overhead would cost more than the server); data connections are read with
recv_into into one large buffer and written with sendall of one large
buffer, so the client does no per-chunk Python work worth measuring.
Workloads with many clients fork one process per client, released
together by a barrier, so the GIL is never shared between clients.

Subcommands:
  ceilings OUT BIG MULTI CERT KEY   raw sendfile (1 and MULTI_CLIENTS streams),
                                    plain and TLS client ceilings -> JSON in OUT
  bench NAME MODE PORT PID OUT [NO_TLS_REASON]
                                    MODE plain: the anonymous workloads;
                                    MODE secure: a burst of password logins
                                    held as idle sessions (first round), FTPS
                                    RETR and password logins;
                                    both merge their metrics into OUT (JSON)
  fail NAME MODE OUT REASON         record that a server did not start in MODE
  merge OUT ROUND_JSON...           one server's rounds as one result (run.sh
                                    runs RUNS rounds of one run each)
  table CEILINGS JSON...            the markdown tables for the collected results
"""
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
BUF = 4 << 20


def knob(name, default):
    return type(default)(os.environ.get(name, default))


RUNS = knob("RUNS", 3)
# run.sh measures in rounds (every server once a round, RUNS=1 each); the
# memory workloads run in the first round only.
ROUND = knob("ROUND", 1)
SIZE_MB = knob("SIZE_MB", 1024)
LOGIN_WORKERS = knob("LOGIN_WORKERS", 20)
LOGIN_SECONDS = knob("LOGIN_SECONDS", 3.0)
IDLE_SESSIONS = knob("IDLE_SESSIONS", 200)
LIST_ENTRIES = knob("LIST_ENTRIES", 10000)
MULTI_CLIENTS = knob("MULTI_CLIENTS", 50)
MULTI_MB = knob("MULTI_MB", 20)
SMALL_FILES = knob("SMALL_FILES", 2000)
SMALL_KB = knob("SMALL_KB", 4)
SMALL_WORKERS = knob("SMALL_WORKERS", 8)
MANY_SESSIONS = knob("MANY_SESSIONS", 10000)
MANY_PROCS = knob("MANY_PROCS", 10)
BURST_SESSIONS = knob("BURST_SESSIONS", 500)
MANY_SERVERS = knob("MANY_SERVERS", "aioftpd pyftpdlib").split()
BENCH_USER = knob("BENCH_USER", "bench")
BENCH_PASS = os.environ.get("BENCH_PASS", "")
TLS_CERT = os.environ.get("TLS_CERT", "")
LOADGEN = os.environ.get("LOADGEN", "")
DATA = os.environ.get("DATA", "")  # the servers' root on the local disk


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
            shown = "PASS ****" if line and line.startswith("PASS ") else line
            raise RuntimeError(f"{shown or 'reply'}: expected {code}, got {r!r}")
        return r

    def login(self, user="anonymous", password="bench@example.org"):
        r = self.cmd(f"USER {user}")
        if r.startswith("331"):
            r = self.cmd(f"PASS {password}")
        if not r.startswith("230"):
            raise RuntimeError(f"login as {user} failed: {r!r}")

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


_buf = None


def drain(data):
    """Read a data connection to EOF into one reused buffer; returns bytes."""
    global _buf
    if _buf is None:
        _buf = memoryview(bytearray(BUF))
    total = 0
    while True:
        n = data.recv_into(_buf)
        if not n:
            break
        total += n
    data.close()
    return total


def expect_size(n, want, what):
    # A short or long download is a server bug, not a slow run: say so.
    if n != want:
        raise RuntimeError(f"{what}: got {n} bytes, expected {want}")


# ---- the machine's memory ----------------------------------------------------
# This VM pages out what has not been touched for about a minute (DAMON,
# action pageout) and hands free memory back to its host (virtio-balloon
# free page reporting). So a file read into the page cache at the start may
# be on the disk again when its turn comes, and an upload into memory the
# host must supply again costs several times the CPU: each workload is
# given the state it assumes before its clock starts.

def warm_files(*ftp_paths):
    """Reads the files (FTP paths under DATA; a directory: its entries'
    metadata) into the caches."""
    buf = bytearray(BUF)
    for ftp_path in ftp_paths:
        path = DATA + ftp_path
        if os.path.isdir(path):
            for entry in os.scandir(path):
                entry.stat()
            continue
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def warm_memory(size):
    """Flushes earlier uploads to the disk, then writes and deletes size
    bytes on the uploads' filesystem, so the upload that follows gets pages
    the guest has."""
    os.sync()
    block = bytes(BUF)
    path = f"{DATA}/.warm-memory"
    with open(path, "wb") as f:
        for _ in range(max(size // BUF, 1)):
            f.write(block)
    os.unlink(path)


def loadgen(*args):
    """Runs one workload in the Rust load generator; returns its JSON."""
    p = subprocess.run([LOADGEN, *map(str, args)], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(p.stderr.strip() or f"loadgen exited with {p.returncode}")
    return json.loads(p.stdout)


# ---- process trees: PSS and CPU --------------------------------------------

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


def fan_out(n, work, *args):
    """Run work(i, start, *args) in n forked processes, released together.

    work does its setup, calls start() when ready, does the measured part
    and returns a dict. Each result gets t0/t1 (CLOCK_MONOTONIC, the same
    clock in every process) and cpu (the process's own utime+stime) from
    start() to its return. Returns (results, wall from the first start to
    the last return, client CPU summed over the processes)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n + 1)
    queue = ctx.Queue()

    def child(i):
        marks = {}

        def start():
            barrier.wait(timeout=300)
            marks["cpu0"], marks["t0"] = own_cpu(), time.monotonic()

        try:
            r = work(i, start, *args)
            r.update(t0=marks["t0"], t1=time.monotonic(), cpu=own_cpu() - marks["cpu0"])
        except BaseException as e:  # reported to the parent, which raises
            barrier.abort()
            r = {"error": f"{type(e).__name__}: {e}"}
        queue.put(r)

    procs = [ctx.Process(target=child, args=(i,)) for i in range(n)]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        pass
    results = [queue.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise RuntimeError(f"{len(errors)} of {n} clients failed, first: {errors[0]}")
    wall = max(r["t1"] for r in results) - min(r["t0"] for r in results)
    return results, wall, sum(r["cpu"] for r in results)


# ---- workloads -----------------------------------------------------------
# Each returns one run's numbers; throughput workloads also return the
# client's own CPU seconds ("client_cpu") and the measured wall time ("wall").

def retr(port, pid, path, size):
    warm_files(path)
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
    expect_size(n, size, f"RETR {path}")
    gib = n / (1 << 30)
    return {"mbps": n / dt / 1e6, "bytes": n, "server_cpu_per_gib": cpu / gib,
            "client_cpu_per_gib": own / gib, "client_cpu": own, "wall": dt}


def stor(port, pid, path, size):
    block = bytes(BUF)
    warm_memory(size)
    c = Control(port)
    c.login()
    c.expect("200", "TYPE I")
    data = c.passive()
    cpu0, own0, t0 = cpu_seconds(pid), own_cpu(), time.perf_counter()
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
    cpu, own = cpu_seconds(pid) - cpu0, own_cpu() - own0
    c.cmd(f"DELE {path}")
    c.close()
    return {"mbps": sent / dt / 1e6, "server_cpu_per_gib": cpu / (sent / (1 << 30)),
            "client_cpu": own, "wall": dt}


def multi_retr_client(i, start, port, path, size):
    c = Control(port)
    c.login()
    c.expect("200", "TYPE I")
    data = c.passive()
    start()
    c.sock.sendall(f"RETR {path}\r\n".encode())
    c.expect("1")
    n = drain(data)
    c.expect("2")
    c.close()
    expect_size(n, size, f"RETR {path}")
    return {"bytes": n}


def multi_retr(port, path, size):
    """MULTI_CLIENTS clients, each logged in with its data connection made,
    send RETR of the same file at once: first command to last 226."""
    warm_files(path)
    results, wall, cpu = fan_out(MULTI_CLIENTS, multi_retr_client, port, path, size)
    total = sum(r["bytes"] for r in results)
    return {"mbps": total / wall / 1e6, "client_cpu": cpu, "wall": wall}


def small_files(port, pid, verb, prefix):
    """SMALL_WORKERS workers (load generator threads), each logged in once,
    RETR or STOR {prefix}00000.. with one EPSV and data connection per file."""
    if verb == "RETR":
        warm_files(*(f"{prefix}{j:05d}" for j in range(SMALL_FILES)))
    # The server's CPU includes the workers' logins: 8 against 2,000 files.
    server0 = cpu_seconds(pid)
    r = loadgen("small", "--port", port, "--workers", SMALL_WORKERS, "--verb", verb,
                "--prefix", prefix, "--files", SMALL_FILES, "--size", SMALL_KB << 10)
    return {"per_second": r["files"] / r["wall"],
            "server_us_per_file": (cpu_seconds(pid) - server0) / r["files"] * 1e6,
            "client_cpu": r["client_cpu"], "wall": r["wall"]}


def ftps_retr(port, pid, path, size):
    """Explicit FTPS (RFC 4217) download over TLS 1.3, as BENCH_USER, in the
    load generator. The data connection resumes the control connection's
    session, as servers that check it (aioftpd, vsftpd, ProFTPD) require.
    The load generator waits for a go once it has logged in and made the
    data connection, and again once the 226 is in, so the server's CPU
    counts from RETR to the 226, as its wall time and its own CPU do, and
    is read while the session (a process of its own in the forking
    servers) is still there to read."""
    warm_files(path)
    p = subprocess.Popen(
        [LOADGEN, "ftps-retr", "--port", str(port), "--user", BENCH_USER,
         "--password", BENCH_PASS, "--path", path, "--size", str(size),
         "--ca", TLS_CERT, "--wait-go"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said, cpu = [], []
    for mark in ("ready\n", "done\n"):
        said.append(p.stderr.readline())
        if said[-1] != mark:
            break
        cpu.append(cpu_seconds(pid))
        p.stdin.write("go\n")
        p.stdin.flush()
    out, err = p.communicate()
    if p.returncode or len(cpu) != 2:
        raise RuntimeError(("".join(said) + err).strip()
                           or f"loadgen exited with {p.returncode}")
    r = json.loads(out)
    gib = r["bytes"] / (1 << 30)
    return {"version": r["version"], "cipher": r["cipher"], "resumed": r["resumed"],
            "mbps": r["bytes"] / r["wall"] / 1e6, "server_cpu_per_gib": (cpu[1] - cpu[0]) / gib,
            "client_cpu": r["client_cpu"], "wall": r["wall"]}


def listing(port, verb, path):
    warm_files(path)
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


def logins(port, pid, user="anonymous", password="bench@example.org"):
    """LOGIN_WORKERS load generator threads connect, log in and QUIT for
    LOGIN_SECONDS."""
    server0 = cpu_seconds(pid)
    r = loadgen("logins", "--port", port, "--workers", LOGIN_WORKERS,
                "--seconds", LOGIN_SECONDS, "--user", user, "--password", password)
    return {"per_second": r["logins"] / r["wall"], "errors": r["errors"],
            "first_error": r["first_error"], "client_cpu": r["client_cpu"],
            "server_us_per_login": (cpu_seconds(pid) - server0) / max(r["logins"], 1) * 1e6,
            "wall": r["wall"]}


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


def password_burst(port, pid):
    """BURST_SESSIONS password logins at once, held open as idle sessions,
    then closed: the server's PSS before, while they are open, and once
    they are gone. MANY_PROCS processes each open their share up to the
    331, wait at a barrier, then send every PASS before reading any reply,
    so the server sees the passwords all within a few milliseconds (as a
    client fleet reconnecting after an outage would send them)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(MANY_PROCS + 1)
    ready, release = ctx.Queue(), ctx.Event()

    def child(count):
        sessions, errors, first = [], 0, None
        try:
            for _ in range(count):
                c = Control(port, timeout=120)
                c.expect("331", f"USER {BENCH_USER}")
                sessions.append(c)
            barrier.wait(timeout=300)
        except (OSError, RuntimeError, ConnectionError, threading.BrokenBarrierError) as e:
            barrier.abort()
            ready.put((0, count, f"{type(e).__name__}: {e}"))
            return
        for c in sessions:
            c.sock.sendall(f"PASS {BENCH_PASS}\r\n".encode())
        ok = 0
        for c in sessions:
            try:
                r = c.reply()
                if r.startswith("230"):
                    ok += 1
                    continue
                first = first or f"PASS: {r!r}"
            except (OSError, ConnectionError) as e:
                first = first or f"{type(e).__name__}: {e}"
            errors += 1
        ready.put((ok, errors, first))
        release.wait(600)
        for c in sessions:
            c.close()

    share = [BURST_SESSIONS // MANY_PROCS + (i < BURST_SESSIONS % MANY_PROCS)
             for i in range(MANY_PROCS)]
    time.sleep(0.5)
    before, tree_before = pss_kib(pid), len(tree(pid))
    procs = [ctx.Process(target=child, args=(n,)) for n in share]
    for p in procs:
        p.start()
    try:
        barrier.wait(timeout=300)
    except threading.BrokenBarrierError:
        pass
    t0 = time.monotonic()
    got = [ready.get(timeout=600) for _ in procs]
    logged_in = time.monotonic() - t0
    time.sleep(1.0)
    during = pss_kib(pid)
    release.set()
    for p in procs:
        p.join()
    # The forking servers' session processes take a moment to exit.
    for _ in range(50):
        if len(tree(pid)) <= tree_before:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    after = pss_kib(pid)
    ok = sum(g[0] for g in got)
    return {"sessions": ok, "errors": sum(g[1] for g in got),
            "first_error": next((g[2] for g in got if g[2]), None),
            "pss_before_kib": before, "pss_open_kib": during, "pss_after_kib": after,
            "kib_per_session": (during - before) / max(ok, 1),
            "kib_left": after - before, "login_seconds": logged_in}


def many_sessions(port, pid):
    """MANY_SESSIONS logged-in idle sessions opened from MANY_PROCS processes;
    the server's total PSS while they are all open."""
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Queue(), ctx.Event()

    def child(count):
        sessions, errors, first = [], 0, None
        for _ in range(count):
            try:
                c = Control(port, timeout=30)
                c.login()
                sessions.append(c)
            except (OSError, RuntimeError, ConnectionError) as e:
                errors += 1
                first = first or f"{type(e).__name__}: {e}"
        ready.put((len(sessions), errors, first))
        release.wait(600)
        for c in sessions:
            c.sock.close()

    share = [MANY_SESSIONS // MANY_PROCS + (i < MANY_SESSIONS % MANY_PROCS)
             for i in range(MANY_PROCS)]
    t0 = time.monotonic()
    procs = [ctx.Process(target=child, args=(n,)) for n in share if n]
    for p in procs:
        p.start()
    got = [ready.get(timeout=600) for _ in procs]
    opened = time.monotonic() - t0
    time.sleep(1.0)
    pss = pss_kib(pid)
    release.set()
    for p in procs:
        p.join()
    return {"sessions": sum(g[0] for g in got), "errors": sum(g[1] for g in got),
            "first_error": next((g[2] for g in got if g[2]), None),
            "pss_kib": pss, "open_seconds": opened}


def merge(out, *paths):
    """One server's results from the rounds' files as one: each measured
    value's median, min and max over the rounds (each round made one run),
    the client load's medians, errors summed, and the rest (memory, TLS
    details) from the round that has it."""
    rounds = []
    for p in paths:
        with open(p) as f:
            rounds.append(json.load(f))
    res = {"server": rounds[0]["server"], "notes": {}, "client": {}}
    runs, loads = {}, {}
    for r in rounds:
        res["notes"].update(r["notes"])
        for key, load in r["client"].items():
            loads.setdefault(key, []).append(load)
        for key, v in r.items():
            if key in ("server", "notes", "client") or v is None:
                continue
            if isinstance(v, dict) and "median" in v:
                runs.setdefault(key, []).append(v["median"])
            elif key.endswith("errors"):
                res[key] = res.get(key, 0) + v
            else:
                res.setdefault(key, v)
    for key, values in runs.items():
        res[key] = {"median": statistics.median(values), "min": min(values),
                    "max": max(values)}
    for key, ls in loads.items():
        res["client"][key] = {"cpu": statistics.median(x["cpu"] for x in ls),
                              "wall": statistics.median(x["wall"] for x in ls)}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def median_of(runs, key):
    values = [r[key] for r in runs if r is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench(name, mode, port, pid, out, no_tls=""):
    port, pid = int(port), int(pid)
    res = {"server": name, "notes": {}, "client": {}}
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
    size = SIZE_MB << 20

    def step(label, fn, key=None, runs=RUNS):
        """RUNS runs of fn; a failure is recorded as a note, not a crash."""
        t0 = time.time()
        out = []
        try:
            for _ in range(runs):
                out.append(fn())
        except Exception as e:  # noqa: BLE001 -- any failure is a result here
            msg = f"{type(e).__name__}: {e}"
            print(f"  {name:10} {label:10} FAILED: {msg}", file=sys.stderr)
            res["notes"][label] = msg
            return None
        print(f"  {name:10} {label:10} {time.time() - t0:6.1f}s  {out[-1]}", file=sys.stderr)
        if key and all(r is not None and "client_cpu" in r for r in out):
            res["client"][key] = {"cpu": statistics.median(r["client_cpu"] for r in out),
                                  "wall": statistics.median(r["wall"] for r in out)}
        return out

    if mode == "plain":
        plain(name, port, pid, res, step, size)
    else:
        secure(name, port, pid, res, step, size, no_tls)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def memory(name, port, pid, res, step):
    """First, on a fresh server, so earlier workloads' heap growth does not
    hide the sessions' memory."""
    r = step("idle", lambda: idle_memory(port, pid), runs=1)
    if r:
        res["idle"] = r[0]
        res["idle_kib"] = r[0]["kib_per_session"]
        res["idle_pss"] = r[0]["pss_before_kib"]
    if name in MANY_SERVERS:
        r = step("many", lambda: many_sessions(port, pid), runs=1)
        if r:
            res["many"] = r[0]
            res["many_pss_mib"] = r[0]["pss_kib"] / 1024
            if r[0]["errors"]:
                res["notes"]["many"] = (f"{r[0]['errors']} of {MANY_SESSIONS} sessions "
                                        f"failed, first: {r[0]['first_error']}")


def plain(name, port, pid, res, step, size):
    if ROUND == 1:
        memory(name, port, pid, res, step)
    r = step("RETR", lambda: retr(port, pid, "/big.bin", size), "retr_mbps")
    if r:
        res["retr_mbps"] = median_of(r, "mbps")
        res["retr_server_cpu_per_gib"] = median_of(r, "server_cpu_per_gib")
        res["retr_client_cpu_per_gib"] = median_of(r, "client_cpu_per_gib")
    r = step("RETR multi", lambda: multi_retr(port, "/multi.bin", MULTI_MB << 20), "multi_mbps")
    if r:
        res["multi_mbps"] = median_of(r, "mbps")
    # A new name each run: pure-ftpd refuses anonymous overwrites and DELE.
    names = iter(range(RUNS))
    r = step("STOR", lambda: stor(port, pid, f"/up/stor-{name}-{next(names)}.bin", size),
             "stor_mbps")
    if r:
        res["stor_mbps"] = median_of(r, "mbps")
        res["stor_server_cpu_per_gib"] = median_of(r, "server_cpu_per_gib")
    runs = iter(range(RUNS))

    def small_stor():
        run = next(runs)
        warm_memory(256 << 20)
        return small_files(port, pid, "STOR", f"/up/s-{name}-{run}-f-")
    r = step("small STOR", small_stor, "small_stor_fps")
    if r:
        res["small_stor_fps"] = median_of(r, "per_second")
        res["small_stor_server_us"] = median_of(r, "server_us_per_file")
    # Files made in advance by run.sh, so RETR does not depend on STOR.
    # f-00000, f-00001, ...: as `split -d -a 5` names them in run.sh.
    r = step("small RETR", lambda: small_files(port, pid, "RETR", "/small/f-"),
             "small_retr_fps")
    if r:
        res["small_retr_fps"] = median_of(r, "per_second")
        res["small_retr_server_us"] = median_of(r, "server_us_per_file")
    r = step("login", lambda: logins(port, pid), "logins_per_s")
    if r:
        res["logins_per_s"] = median_of(r, "per_second")
        res["login_server_us"] = median_of(r, "server_us_per_login")
        res["login_errors"] = sum(x["errors"] for x in r)
        if res["login_errors"]:
            res["notes"]["login errors"] = f"{res['login_errors']}, first: {r[0]['first_error']}"
    r = step("LIST", lambda: listing(port, "LIST", "/list"))
    if r:
        res["list_s"] = median_of(r, "seconds")
        res["list_bytes"] = r[0]["bytes"] if r[0] else None
    r = step("MLSD", lambda: listing(port, "MLSD", "/list"))
    if r:
        res["mlsd_s"] = median_of(r, "seconds")


def secure(name, port, pid, res, step, size, no_tls):
    if ROUND == 1:
        # First, on the fresh server, as the anonymous memory workload.
        r = step("pw burst", lambda: password_burst(port, pid), runs=1)
        if r:
            res["burst"] = r[0]
            res["burst_kib"] = r[0]["kib_per_session"]
            res["burst_left_kib"] = r[0]["kib_left"]
            if r[0]["errors"]:
                res["notes"]["pw burst"] = (f"{r[0]['errors']} of {BURST_SESSIONS} logins "
                                            f"failed, first: {r[0]['first_error']}")
    if no_tls:
        res["notes"]["FTPS"] = no_tls
    else:
        r = step("FTPS RETR", lambda: ftps_retr(port, pid, "/big.bin", size), "ftps_mbps")
        if r:
            res["ftps_mbps"] = median_of(r, "mbps")
            res["ftps_server_cpu_per_gib"] = median_of(r, "server_cpu_per_gib")
            res["ftps_tls"] = {k: r[0][k] for k in ("version", "cipher", "resumed")}
    r = step("pw login", lambda: logins(port, pid, BENCH_USER, BENCH_PASS), "pw_logins_per_s")
    if r:
        res["pw_logins_per_s"] = median_of(r, "per_second")
        res["pw_login_server_us"] = median_of(r, "server_us_per_login")
        res["pw_login_errors"] = sum(x["errors"] for x in r)
        if res["pw_login_errors"]:
            res["notes"]["password login errors"] = (
                f"{res['pw_login_errors']}, first: {r[0]['first_error']}")


def fail(name, mode, out, reason):
    res = {"server": name, "notes": {}, "client": {}}
    if os.path.exists(out):
        with open(out) as f:
            res = json.load(f)
    res["notes"][f"{mode} server"] = reason
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# ---- ceilings: what the machine and the client can do without an FTP server --

def _serve_once(lsock, send):
    """Fork a child that accepts one connection on lsock and runs send(conn)."""
    pid = os.fork()
    if pid == 0:
        try:
            conn, _ = lsock.accept()
            send(conn)
            conn.close()
        finally:
            os._exit(0)
    return pid


def _sendfile_all(path):
    def send(conn):
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            off = 0
            while off < size:
                off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)
    return send


def _one_stream(send):
    """RUNS times: a child runs send(conn), we read the socket to EOF like
    for RETR. Returns [(MB/s, reader CPU s, wall s)]."""
    lsock = socket.create_server((HOST, 0))
    port = lsock.getsockname()[1]
    runs = []
    for _ in range(RUNS):
        pid = _serve_once(lsock, send)
        raw = socket.create_connection((HOST, port))
        cpu0, t0 = own_cpu(), time.perf_counter()
        n = drain(raw)
        dt = time.perf_counter() - t0
        runs.append((n / dt / 1e6, own_cpu() - cpu0, dt))
        os.waitpid(pid, 0)
    lsock.close()
    return runs


def _memory_sender():
    size = SIZE_MB << 20

    def send(conn):
        view = memoryview(bytes(BUF))
        sent = 0
        while sent < size:
            conn.sendall(view)
            sent += BUF
    return send


def _tls_stream(cert, key):
    """RUNS times: the load generator's FTPS reader against a rustls TLS 1.3
    sender writing from memory in the same process. Returns the runs as
    _one_stream does, and the cipher."""
    runs = []
    for _ in range(RUNS):
        r = loadgen("tls-ceiling", "--cert", cert, "--key", key, "--size", SIZE_MB << 20)
        runs.append((r["bytes"] / r["wall"] / 1e6, r["client_cpu"], r["wall"]))
    return runs, r["cipher"]


def _multi_sendfile_client(i, start, port):
    data = socket.create_connection((HOST, port))
    start()
    data.sendall(b"g")  # the sender starts on this byte, like on a RETR
    return {"bytes": drain(data)}


def raw_sendfile_multi(path):
    """MULTI_CLIENTS senders (one process each, like forking servers) each
    sendfile() PATH to one of MULTI_CLIENTS readers, released together."""
    lsock = socket.create_server((HOST, 0), backlog=MULTI_CLIENTS)
    port = lsock.getsockname()[1]
    send = _sendfile_all(path)

    def on_go(conn):
        conn.recv(1)
        send(conn)
    runs = []
    for _ in range(RUNS):
        pids = [_serve_once(lsock, on_go) for _ in range(MULTI_CLIENTS)]
        results, wall, cpu = fan_out(MULTI_CLIENTS, _multi_sendfile_client, port)
        for pid in pids:
            os.waitpid(pid, 0)
        runs.append((sum(r["bytes"] for r in results) / wall / 1e6, cpu, wall))
    lsock.close()
    return runs


def ceilings(out, big, multi, cert, key):
    """Raw sendfile (1 and MULTI_CLIENTS streams): what loopback gives a
    zero-copy server; the plain reader against a memory sender, and the load
    generator's FTPS reader against a trivial TLS 1.3 sender: what the
    client can take."""
    client_tls, cipher = _tls_stream(cert, key)
    measured = {
        "sendfile": _one_stream(_sendfile_all(big)),
        "sendfile_multi": raw_sendfile_multi(multi),
        "client_recv": _one_stream(_memory_sender()),
        "client_tls": client_tls,
    }
    res = {"client_tls_cipher": cipher}
    for key, runs in measured.items():
        rates = [r[0] for r in runs]
        res[key] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
                    "client_cpu": statistics.median(r[1] for r in runs),
                    "wall": statistics.median(r[2] for r in runs)}
        print(f"  {key}: {res[key]}", file=sys.stderr)
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# ---- tables ----------------------------------------------------------------

def rows():
    # label, key, higher is better, format
    return [
        ("RETR 1 client, MB/s", "retr_mbps", True, "{:,.0f}"),
        (f"RETR {MULTI_CLIENTS} clients × {MULTI_MB} MiB, aggregate MB/s",
         "multi_mbps", True, "{:,.0f}"),
        ("STOR 1 client, MB/s", "stor_mbps", True, "{:,.0f}"),
        (f"small files: STOR {SMALL_FILES:,} × {SMALL_KB} KiB, {SMALL_WORKERS} workers, files/s",
         "small_stor_fps", True, "{:,.0f}"),
        (f"small files: RETR {SMALL_FILES:,} × {SMALL_KB} KiB, {SMALL_WORKERS} workers, files/s",
         "small_retr_fps", True, "{:,.0f}"),
        ("FTPS RETR 1 client (TLS 1.3), MB/s", "ftps_mbps", True, "{:,.0f}"),
        (f"logins/s (anonymous, {LOGIN_WORKERS} workers)", "logins_per_s", True, "{:,.0f}"),
        (f"logins/s (password, {LOGIN_WORKERS} workers)", "pw_logins_per_s", True, "{:,.0f}"),
        (f"LIST of {LIST_ENTRIES:,} entries, s", "list_s", False, "{:.3f}"),
        (f"MLSD of {LIST_ENTRIES:,} entries, s", "mlsd_s", False, "{:.3f}"),
        ("memory per idle logged-in session, KiB", "idle_kib", False, "{:,.1f}"),
        (f"memory per idle session after {BURST_SESSIONS:,} password logins at once, KiB",
         "burst_kib", False, "{:,.1f}"),
        (f"PSS left once those {BURST_SESSIONS:,} sessions closed, KiB", "burst_left_kib",
         False, "{:,.0f}"),
        ("idle server PSS before any session, KiB", "idle_pss", False, "{:,.0f}"),
        (f"server PSS with {MANY_SESSIONS:,} idle sessions, MiB", "many_pss_mib", False,
         "{:,.1f}"),
        ("server CPU per GiB RETR, s", "retr_server_cpu_per_gib", False, "{:.2f}"),
        ("server CPU per GiB FTPS RETR, s", "ftps_server_cpu_per_gib", False, "{:.2f}"),
        ("server CPU per GiB STOR, s", "stor_server_cpu_per_gib", False, "{:.2f}"),
        ("server CPU per small file STOR, µs", "small_stor_server_us", False, "{:,.0f}"),
        ("server CPU per small file RETR, µs", "small_retr_server_us", False, "{:,.0f}"),
        ("server CPU per login (anonymous), µs", "login_server_us", False, "{:,.0f}"),
        ("server CPU per login (password), µs", "pw_login_server_us", False, "{:,.0f}"),
    ]


def client_rows():
    return [
        ("RETR 1 client", "retr_mbps"),
        (f"RETR {MULTI_CLIENTS} clients", "multi_mbps"),
        ("STOR 1 client", "stor_mbps"),
        ("small files STOR", "small_stor_fps"),
        ("small files RETR", "small_retr_fps"),
        ("FTPS RETR", "ftps_mbps"),
        ("logins (anonymous)", "logins_per_s"),
        ("logins (password)", "pw_logins_per_s"),
    ]


def spread(res, key, fmt):
    v = res.get(key)
    if not isinstance(v, dict) or v["min"] == v["max"]:
        return ""
    return " (" + fmt.format(v["min"]) + "–" + fmt.format(v["max"]) + ")"


def value(res, key):
    v = res.get(key)
    if isinstance(v, dict):
        return v["median"]
    return v


def table(ceilings_path, paths):
    with open(ceilings_path) as f:
        ceil = json.load(f)
    results = []
    for p in paths:
        with open(p) as f:
            results.append(json.load(f))
    names = [r["server"] for r in results]
    ours = next((r for r in results if r["server"] == "aioftpd"), None)
    peers = [r for r in results if r["server"] != "aioftpd"]

    def mbps(v):
        if round(v["min"]) == round(v["max"]):
            return f"{v['median']:,.0f} MB/s"
        return f"{v['median']:,.0f} MB/s ({v['min']:,.0f}–{v['max']:,.0f})"
    print(f"Ceilings, over loopback without an FTP server: raw sendfile of the file "
          f"{mbps(ceil['sendfile'])}; raw sendfile to {MULTI_CLIENTS} readers at once "
          f"{mbps(ceil['sendfile_multi'])}; client ceiling (recv_into from a memory "
          f"sender) {mbps(ceil['client_recv'])}; TLS 1.3 client ceiling (the load "
          f"generator's FTPS reader against a rustls sender in the same process, "
          f"{ceil['client_tls_cipher']}) "
          f"{mbps(ceil['client_tls'])}.")
    # The issue sets RETR targets against raw sendfile as well as the peers.
    if ours and value(ours, "retr_mbps") and value(ours, "multi_mbps"):
        print(f"aioftpd / raw sendfile: RETR 1 client "
              f"{value(ours, 'retr_mbps') / ceil['sendfile']['median']:.2f}×, RETR "
              f"{MULTI_CLIENTS} clients {value(ours, 'multi_mbps') / ceil['sendfile_multi']['median']:.2f}×.")
    print()

    print("Cells: median of the runs (min–max).\n")
    print("| metric | " + " | ".join(names) + " | aioftpd / best peer |")
    print("|---|" + "---|" * (len(names) + 1))
    for label, key, higher, fmt in rows():
        cells = []
        for r in results:
            v = value(r, key)
            cells.append("—" if v is None else fmt.format(v) + spread(r, key, fmt))
        ratio = "—"
        mine = value(ours, key) if ours else None
        theirs = [(value(r, key), r["server"]) for r in peers if value(r, key) is not None]
        if mine is not None and theirs:
            best, who = (max if higher else min)(theirs)
            if best > 0:
                ratio = f"{mine / best:.2f}× ({who})"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")

    if ours and peers:
        print("\naioftpd's value divided by each peer's, same run (for times and "
              "memory, lower is better, so < 1 is a win there):\n")
        print("| metric | " + " | ".join(r["server"] for r in peers) + " |")
        print("|---|" + "---|" * len(peers))
        for label, key, _, _ in rows():
            mine = value(ours, key)
            cells = []
            for r in peers:
                v = value(r, key)
                ok = mine is not None and v
                cells.append(f"{mine / v:.2f}×" if ok else "—")
            print(f"| {label} | " + " | ".join(cells) + " |")

    print("\nClient load: the client's own CPU (utime+stime of its processes, or of "
          "the Rust load generator for small files, FTPS and logins) / wall time of "
          "the measured part, seconds, median run, and CPU as a share of one core; "
          f"the machine has {os.cpu_count()}. A single-stream workload near 100 %, "
          "or a many-worker one near the core count, is client-bound.\n")
    print("| workload | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    def load(cpu, wall):
        return f"{cpu:.2f} / {wall:.2f} ({cpu / wall:.0%})"
    for label, key in client_rows():
        cells = []
        for r in results:
            c = r.get("client", {}).get(key)
            cells.append("—" if not c else load(c["cpu"], c["wall"]))
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\nThe same for the ceilings' readers: " + "; ".join(
        f"{label} {load(ceil[key]['client_cpu'], ceil[key]['wall'])}" for label, key in [
            ("raw sendfile", "sendfile"),
            (f"raw sendfile to {MULTI_CLIENTS} readers", "sendfile_multi"),
            ("plain reader", "client_recv"), ("TLS reader", "client_tls")]) + ".")

    notes = []
    for r in results:
        tls = r.get("ftps_tls")
        if tls:
            notes.append(f"{r['server']}: FTPS data connection {tls['version']} "
                         f"{tls['cipher']}, session {'resumed' if tls['resumed'] else 'NOT resumed'}")
        for what, why in r.get("notes", {}).items():
            notes.append(f"{r['server']}: {what}: {why}")
        many = r.get("many")
        if many:
            notes.append(f"{r['server']}: {many['sessions']:,} sessions opened in "
                         f"{many['open_seconds']:.1f} s")
    if notes:
        print("\nNotes:\n")
        for n in notes:
            print(f"- {n}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"ceilings": ceilings, "bench": bench, "fail": fail, "merge": merge,
     "table": lambda c, *a: table(c, a)}[cmd](*args)
