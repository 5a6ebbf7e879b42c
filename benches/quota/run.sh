#!/usr/bin/env bash
# What a quota costs an upload: STOR of one large file by curl, by a user
# without a quota (spliced into the file) and by one with a quota far above
# what it holds (every block counted through write_block, reserved 4 MiB at
# a time in the in-memory ledger). Run from the repo:
#
#     benches/quota/run.sh
#
# Env (default in parentheses):
#   SIZE_MB (1024)    size of the upload
#   RUNS (5)          runs of each case, alternating; every run is printed, then the median
#   CARGO_TARGET_DIR (target)   where the release binary is built
#   SKIP_BUILD        set to use the binary already built
set -euo pipefail

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-5}
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

head -c "$((SIZE_MB << 20))" /dev/zero > "$WORK/upload.bin"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
HASH=$(printf 'pw\n' | "$BIN" hash-password 2>/dev/null | tail -n 1)
mkdir -p "$WORK/plain" "$WORK/quota"
cat > "$WORK/aioftpd.toml" <<CONF
[server]
listen = ["127.0.0.1:$PORT"]
[[users]]
login = "plain"
password = "$HASH"
base_path = "$WORK/plain"
permissions = [{ path = "/", writable = true }]
[[users]]
login = "quota"
password = "$HASH"
base_path = "$WORK/quota"
permissions = [{ path = "/", writable = true }]
quota_bytes = "1TiB"
CONF
"$BIN" --config "$WORK/aioftpd.toml" --log-level warn,aioftpd::supervisor=info 2> "$WORK/daemon.log" &
DAEMON=$!
for _ in $(seq 1 200); do
    grep -q listening "$WORK/daemon.log" 2>/dev/null && break
    sleep 0.05
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "# STOR of $SIZE_MB MiB by curl, $RUNS runs per case"
printf '%-6s %-4s %10s\n' user run "MB/s"
: > "$WORK/plain.rates"
: > "$WORK/quota.rates"
for run in $(seq 1 "$RUNS"); do
    for user in plain quota; do
        rate=$(curl --silent --show-error --write-out '%{speed_upload}' -o /dev/null \
            -T "$WORK/upload.bin" "ftp://$user:pw@127.0.0.1:$PORT/up.bin")
        mb=$(awk -v r="$rate" 'BEGIN { printf "%.0f", r / 1e6 }')
        echo "$mb" >> "$WORK/$user.rates"
        printf '%-6s %-4s %10s\n' "$user" "$run" "$mb"
    done
done
for user in plain quota; do
    printf '%-6s %-4s %10s\n' "$user" median "$(median < "$WORK/$user.rates")"
done
