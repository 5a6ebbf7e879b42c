#!/usr/bin/env bash
# Transfer time with a hook that takes 10 s on every event, against no hook
# (issue 18 item 5: "a hook that hangs or fails does not slow transfers").
# Run from the repo:
#
#     benches/hooks/run.sh
#
# Env (default in parentheses):
#   UPLOADS (200)     uploads in one session, then as many sessions of one upload each
#   SIZE_KB (64)      size of each upload
#   RUNS (3)          runs of each case; every run is printed, then the median
#   HOOK_SLEEP (10)   seconds the hook program sleeps on each event
#   CARGO_TARGET_DIR (target)   where the release binary is built
#   SKIP_BUILD        set to use the binary already built
#
# The server is the release build on 127.0.0.1 serving a temp dir to the
# anonymous user (writable); the client is Python's ftplib. The "hook" case
# adds one [[hooks]] entry hearing every event (so each upload, download and
# login queues one) whose program sleeps HOOK_SLEEP seconds; its timeout is
# longer than that, so each attempt really takes HOOK_SLEEP seconds, and with
# 4 in flight its queue (1024) fills and the rest are dropped.
set -euo pipefail

UPLOADS=${UPLOADS:-200}
SIZE_KB=${SIZE_KB:-64}
RUNS=${RUNS:-3}
HOOK_SLEEP=${HOOK_SLEEP:-10}
TARGET=${CARGO_TARGET_DIR:-target}

cd "$(dirname "$0")/../.."
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --release --bin aioftpd >&2
fi
BIN="$TARGET/release/aioftpd"

WORK=$(mktemp -d)
DAEMON=
cleanup() {
    if [ -n "$DAEMON" ]; then kill "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/hook.sh" <<HOOK
#!/bin/sh
cat > /dev/null
exec sleep $HOOK_SLEEP
HOOK
chmod 755 "$WORK/hook.sh"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One server for the case "$1" (none or hook); prints nothing, sets DAEMON and PORT.
start() {
    local case=$1
    rm -rf "$WORK/root" && mkdir -p "$WORK/root"
    PORT=$(free_port)
    {
        printf '[server]\nlisten = ["127.0.0.1:%s"]\n' "$PORT"
        printf '[[users]]\nbase_path = "%s"\npermissions = [{ path = "/", readable = true, writable = true }]\n' "$WORK/root"
        if [ "$case" = hook ]; then
            printf '[[hooks]]\nevents = ["upload", "download", "delete", "rename", "mkdir", "rmdir", "login", "login_failed"]\n'
            printf 'command = ["%s"]\ntimeout = "%ss"\nretries = 0\n' "$WORK/hook.sh" "$((HOOK_SLEEP + 5))"
        fi
    } > "$WORK/aioftpd.toml"
    "$BIN" --config "$WORK/aioftpd.toml" --log-level warn,aioftpd::supervisor=info 2> "$WORK/$case.log" &
    DAEMON=$!
    for _ in $(seq 1 200); do
        grep -q listening "$WORK/$case.log" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "aioftpd did not start:" >&2; cat "$WORK/$case.log" >&2; exit 1
}

stop() {
    kill -KILL "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
    DAEMON=
}

# Seconds for: UPLOADS STORs in one session; UPLOADS sessions of login + STOR.
measure() {
    python3 - "$PORT" "$UPLOADS" "$SIZE_KB" <<'PY'
import ftplib, io, sys, time
port, uploads, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) * 1024
data = bytes(range(256)) * (size // 256)
def session():
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=30)
    ftp.login()
    return ftp
start = time.perf_counter()
ftp = session()
for i in range(uploads):
    ftp.storbinary(f"STOR one-{i}.bin", io.BytesIO(data))
ftp.quit()
one = time.perf_counter() - start
start = time.perf_counter()
for i in range(uploads):
    ftp = session()
    ftp.storbinary(f"STOR many-{i}.bin", io.BytesIO(data))
    ftp.quit()
many = time.perf_counter() - start
print(f"{one:.3f} {many:.3f}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "# $UPLOADS uploads of $SIZE_KB KiB, $RUNS runs; hook sleeps ${HOOK_SLEEP}s per event"
printf '%-6s %-4s %18s %22s\n' case run "one session (s)" "$UPLOADS sessions (s)"
# The cases alternate, and which goes first swaps run by run, so a change
# in the machine's load, or the TIME_WAIT sockets each run leaves for the
# next, falls on both alike.
: > "$WORK/none.times"
: > "$WORK/hook.times"
for run in $(seq 1 "$RUNS"); do
    order="none hook"
    [ $((run % 2)) -eq 0 ] && order="hook none"
    for case in $order; do
        start "$case"
        times=$(measure)
        stop
        echo "$times" >> "$WORK/$case.times"
        printf '%-6s %-4s %18s %22s\n' "$case" "$run" $times
    done
done
for case in none hook; do
    one=$(cut -d' ' -f1 "$WORK/$case.times" | median)
    many=$(cut -d' ' -f2 "$WORK/$case.times" | median)
    printf '%-6s %-4s %18s %22s\n' "$case" median "$one" "$many"
done
dropped=$(grep -c "queue is full" "$WORK/hook.log" || true)
echo "# hook case, last run: $(grep -c 'hook failed' "$WORK/hook.log" || true) failures logged, $dropped queue-full warnings"
