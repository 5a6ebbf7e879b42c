#!/usr/bin/env bash
# aioftpd on the S3 backend against a direct S3 client, on the scale-out
# test bed (tests/scale-out/testbed.sh): the same objects, the same Garage
# cluster behind the same HAProxy, in the same run.
#
#     benches/scale-out/s3.sh
#
# Env: SIZE_MB (256) the file, RUNS (3) runs of each, median reported;
# PARALLEL (4) uploads at once for the memory figure. Needs curl, rclone
# (its S3 backend is the direct client), haproxy and Garage (as .ci/run
# installs them); builds aioftpd in release mode.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SIZE_MB=${SIZE_MB:-256}
RUNS=${RUNS:-3}
PARALLEL=${PARALLEL:-4}
WORK=$(mktemp -d /tmp/aioftpd-s3-bench.XXXXXX)
BED_PID=

cleanup() {
    [[ -n $BED_PID ]] && kill "$BED_PID" 2>/dev/null && wait "$BED_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

(cd "$REPO" && cargo build --release -q)
export AIOFTPD=${CARGO_TARGET_DIR:-$REPO/target}/release/aioftpd
mkfifo "$WORK/bed.out"
"$REPO/tests/scale-out/testbed.sh" "$WORK/bed" >"$WORK/bed.out" &
BED_PID=$!
read -r ready <"$WORK/bed.out"
[[ $ready == ready ]] || { echo "the test bed did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$WORK/bed/env"

head -c $((SIZE_MB << 20)) /dev/urandom >"$WORK/file"
ftp="ftp://$FTP_USER:$FTP_PASS@$FTP_HOST:$FTP_PORT_A"
# rclone's S3 client refuses a CA bundle with its own HTTP transport, and
# the bed is plain HTTP on loopback: no bundle is wanted.
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_BED_TYPE=s3 RCLONE_CONFIG_BED_PROVIDER=Other \
    RCLONE_CONFIG_BED_ENDPOINT=$S3_ENDPOINT RCLONE_CONFIG_BED_REGION=$S3_REGION \
    RCLONE_CONFIG_BED_ACCESS_KEY_ID=$S3_KEY_ID RCLONE_CONFIG_BED_SECRET_ACCESS_KEY=$S3_SECRET \
    RCLONE_CONFIG_BED_FORCE_PATH_STYLE=true
object="bed:$S3_BUCKET/${S3_PREFIX}"

# seconds COMMAND...: wall time of COMMAND.
seconds() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mbps() { echo "$SIZE_MB * 1.048576 / $1" | bc -l | xargs printf '%.0f'; }

declare -A result
for run in $(seq "$RUNS"); do
    # rclone's defaults for S3 (its own part size and concurrency), one file.
    result[rclone_put]+="$(seconds rclone -q --no-check-dest copyto "$WORK/file" "${object}rclone-$run.bin") "
    result[rclone_get]+="$(seconds rclone -q --no-check-dest copyto "${object}rclone-$run.bin" "$WORK/back") "
    cmp -s "$WORK/file" "$WORK/back" || { echo "rclone read back other bytes" >&2; exit 1; }
    result[ftp_put]+="$(seconds curl -sS --fail -T "$WORK/file" "$ftp/ftp-$run.bin") "
    result[ftp_get]+="$(seconds curl -sS --fail -o "$WORK/back" "$ftp/ftp-$run.bin") "
    cmp -s "$WORK/file" "$WORK/back" || { echo "FTP read back other bytes" >&2; exit 1; }
    rm -f "$WORK/back"
done

# Memory: instance a's RSS while PARALLEL uploads run, against idle.
pid=$(cat "$WORK/bed/pids/aioftpd-a")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
idle=$(rss)
for i in $(seq "$PARALLEL"); do
    curl -sS --fail -T "$WORK/file" "$ftp/par-$i.bin" &
done
wait_uploads() { for job in $(jobs -p); do [[ $job == "$BED_PID" ]] || wait "$job"; done; }
wait_uploads
peak=$(hwm)

echo "S3 backend on the scale-out bed (Garage 3 nodes, rf 3, through HAProxy), $SIZE_MB MiB, median of $RUNS:"
echo
echo "| transfer | aioftpd (curl over FTP) | rclone's S3 backend | ratio |"
echo "|---|---|---|---|"
for dir in put get; do
    f=$(tr ' ' '\n' <<<"${result[ftp_$dir]}" | grep . | median)
    r=$(tr ' ' '\n' <<<"${result[rclone_$dir]}" | grep . | median)
    label=$([[ $dir == put ]] && echo "STOR / upload" || echo "RETR / download")
    printf '| %s | %s MB/s (%.2f s) | %s MB/s (%.2f s) | %.2f× |\n' \
        "$label" "$(mbps "$f")" "$f" "$(mbps "$r")" "$r" "$(echo "$r / $f" | bc -l)"
done
echo
echo "instance a: VmRSS idle ${idle} KiB; VmHWM (peak) with $PARALLEL uploads at once ${peak} KiB:" \
    "$(( (peak - idle) / PARALLEL )) KiB per upload above idle."
