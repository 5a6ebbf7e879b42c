#!/usr/bin/env bash
# Side-by-side benchmark: aioftpd against vsftpd, pure-ftpd, ProFTPD,
# pyftpdlib and aioftp on loopback (issue 6). Run as root from the repo:
#
#     benches/compare/run.sh
#
# Env: SIZE_MB (1024: RETR/STOR file size), RUNS (3), LOGIN_WORKERS (20),
# LOGIN_SECONDS (5), IDLE_SESSIONS (200), LIST_ENTRIES (10000),
# SERVERS ("aioftpd vsftpd pure-ftpd proftpd pyftpdlib aioftp"),
# WORK (/var/tmp/aioftpd-compare: peers' binaries and test data, kept).
#
# Debian's FTP server packages conflict with each other (all provide
# ftp-server), so the peers are fetched with `apt-get download` and unpacked
# with `dpkg -x` under $WORK/peers; none is installed as a service, and each
# runs in the foreground on its own 127.0.0.1 port, one at a time.
# unFTP is in neither Debian nor PyPI and is skipped.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/benches/compare"
WORK=${WORK:-/var/tmp/aioftpd-compare}
SIZE_MB=${SIZE_MB:-1024}
LIST_ENTRIES=${LIST_ENTRIES:-10000}
SERVERS=${SERVERS:-"aioftpd vsftpd pure-ftpd proftpd pyftpdlib aioftp"}
export SIZE_MB RUNS="${RUNS:-3}" LOGIN_WORKERS="${LOGIN_WORKERS:-20}" \
    LOGIN_SECONDS="${LOGIN_SECONDS:-5}" IDLE_SESSIONS="${IDLE_SESSIONS:-200}"
PEERS="$WORK/peers/root"
DATA="$WORK/data"
TMP=$(mktemp -d /tmp/aioftpd-compare.XXXXXX)
CLIENT=(python3 "$HERE/client.py")
SERVER_PID=
FTP_HOME_WAS=

log() { echo "== $*" >&2; }

cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $FTP_HOME_WAS ]]; then usermod -d "$FTP_HOME_WAS" ftp; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "run as root (peers need it to chroot)" >&2; exit 1; }

# ---- peers -----------------------------------------------------------------
install_peers() {
    if [[ -x $PEERS/usr/sbin/vsftpd && -x $PEERS/usr/sbin/pure-ftpd && -x $PEERS/usr/sbin/proftpd ]]; then
        return
    fi
    log "fetching vsftpd, pure-ftpd, proftpd-core (apt-get download + dpkg -x)"
    apt-get update -qq
    local pkgs="vsftpd pure-ftpd proftpd-core" libs
    # Their shared libraries install fine side by side; the servers do not.
    libs=$(for p in $pkgs; do apt-cache depends "$p" | awk '/Depends: lib/{print $2}'; done | sort -u)
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $libs >/dev/null
    mkdir -p "$WORK/peers"
    (cd "$WORK/peers" && apt-get download $pkgs 2>/dev/null && for d in *.deb; do dpkg -x "$d" root; done)
}

install_python_peers() {
    python3 -c 'import pyftpdlib, aioftp' 2>/dev/null || pip install -q pyftpdlib aioftp
}

stop_system_ftp() {
    # A distribution service on port 21 would skew every number.
    for s in vsftpd pure-ftpd proftpd; do
        service "$s" stop >/dev/null 2>&1 || true
    done
    if ss -ltn 'sport = :21' | grep -q LISTEN; then
        echo "something still listens on port 21; stop it first" >&2
        exit 1
    fi
}

# ---- data ------------------------------------------------------------------
prepare_data() {
    # Root-owned, not writable by the ftp user (vsftpd refuses a writable
    # chroot); uploads go to up/, which anyone may write.
    mkdir -p "$DATA/list" "$DATA/up"
    chmod 755 "$DATA" "$DATA/list"
    chmod 1777 "$DATA/up"
    rm -f "$DATA"/up/*
    local want=$((SIZE_MB << 20))
    if [[ $(stat -c %s "$DATA/big.bin" 2>/dev/null || echo 0) != "$want" ]]; then
        log "writing a $SIZE_MB MiB file"
        head -c "$want" /dev/urandom >"$DATA/big.bin"
    fi
    chmod 644 "$DATA/big.bin"
    if [[ $(find "$DATA/list" -maxdepth 1 -type f | wc -l) != "$LIST_ENTRIES" ]]; then
        log "creating $LIST_ENTRIES small files"
        rm -rf "$DATA/list" && mkdir "$DATA/list"
        (cd "$DATA/list" && seq -f "file-%05.0f.txt" 1 "$LIST_ENTRIES" | xargs touch)
        chmod 644 "$DATA"/list/*
    fi
    cat "$DATA/big.bin" >/dev/null # into the page cache before measuring
}

# ---- servers ---------------------------------------------------------------
wait_port() {
    for _ in $(seq 100); do
        if ss -ltn "sport = :$1" | grep -q LISTEN; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_aioftpd() {
    cat >"$TMP/aioftpd.toml" <<EOF
[server]
listen = ["127.0.0.1:$1"]
max_connections = 4096
max_connections_per_ip = 4096
idle_timeout = "10m"
[login]
failure_delay = "0s"
[[users]]
storage = "fs"
base_path = "$DATA"
permissions = [{ path = "/", readable = true, writable = true }]
EOF
    "$REPO/target/release/aioftpd" run --config "$TMP/aioftpd.toml" --log-level warn &
}

start_vsftpd() {
    mkdir -p /var/run/vsftpd/empty
    cat >"$TMP/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$1
background=NO
anonymous_enable=YES
no_anon_password=NO
anon_root=$DATA
local_enable=NO
write_enable=YES
anon_upload_enable=YES
anon_other_write_enable=YES
anon_umask=022
max_clients=0
max_per_ip=0
xferlog_enable=NO
dirmessage_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
pasv_enable=YES
idle_session_timeout=600
EOF
    "$PEERS/usr/sbin/vsftpd" "$TMP/vsftpd.conf" &
}

start_pure_ftpd() {
    # pure-ftpd serves anonymous users the ftp account's home directory.
    FTP_HOME_WAS=$(getent passwd ftp | cut -d: -f6)
    usermod -d "$DATA" ftp
    # -c/-C: no client caps in the way; -H: no reverse DNS; -A: chroot all.
    "$PEERS/usr/sbin/pure-ftpd" -S "127.0.0.1,$1" -c 1000 -C 1000 -H -A -I 10 &
}

start_proftpd() {
    cat >"$TMP/proftpd.conf" <<EOF
ServerType standalone
DefaultServer on
Port $1
DefaultAddress 127.0.0.1
SocketBindTight on
UseIPv6 off
User nobody
Group nogroup
MaxInstances 1000
ScoreboardFile $TMP/proftpd.scoreboard
PidFile $TMP/proftpd.pid
DelayTable none
WtmpLog off
UseReverseDNS off
TransferLog none
SystemLog $TMP/proftpd.log
RequireValidShell off
TimeoutIdle 600
<Anonymous $DATA>
  User ftp
  Group nogroup
  UserAlias anonymous ftp
  RequireValidShell off
  MaxClients 1000
  <Directory *>
    AllowOverwrite on
    <Limit WRITE>
      AllowAll
    </Limit>
  </Directory>
</Anonymous>
EOF
    "$PEERS/usr/sbin/proftpd" --nodaemon -c "$TMP/proftpd.conf" &
}

start_pyftpdlib() {
    python3 -m pyftpdlib -i 127.0.0.1 -p "$1" -d "$DATA" -w 2>"$TMP/pyftpdlib.log" &
}

start_aioftp() {
    python3 -m aioftp --host 127.0.0.1 --port "$1" --family ipv4 -d "$DATA" -q &
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    rm -f "$DATA"/up/*
    if [[ -n $FTP_HOME_WAS ]]; then usermod -d "$FTP_HOME_WAS" ftp; FTP_HOME_WAS=; fi
    sleep 0.5
}

# ---- run -------------------------------------------------------------------
install_peers
install_python_peers
stop_system_ftp
log "building aioftpd (release)"
(cd "$REPO" && cargo build --release -q)
prepare_data

log "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
log "client ceiling (recv_into from a memory sendall):"
"${CLIENT[@]}" client-check | tee "$TMP/client.json" >&2
log "raw sendfile baseline of big.bin:"
"${CLIENT[@]}" baseline "$DATA/big.bin" | tee "$TMP/baseline.json" >&2

port=2200
results=()
for s in $SERVERS; do
    port=$((port + 1))
    log "$s on 127.0.0.1:$port"
    "start_${s//-/_}" "$port" 2>"$TMP/$s.log"
    SERVER_PID=$!
    wait_port "$port"
    "${CLIENT[@]}" bench "$s" "$port" "$SERVER_PID" "$TMP/$s.json"
    results+=("$TMP/$s.json")
    stop_server
done

echo
echo "Sizes: ${SIZE_MB} MiB file, ${LIST_ENTRIES}-entry directory, ${LOGIN_WORKERS} login workers × ${LOGIN_SECONDS} s, ${IDLE_SESSIONS} idle sessions; median of ${RUNS}."
python3 - "$TMP/baseline.json" "$TMP/client.json" <<'EOF'
import json, sys
b, c = (json.load(open(p)) for p in sys.argv[1:3])
print(f"Raw sendfile of the file over loopback: {b['sendfile_mbps']:,.0f} MB/s "
      f"(min {b['min']:,.0f}, max {b['max']:,.0f}); client ceiling (recv_into "
      f"from a memory sender): {c['client_recv_mbps']:,.0f} MB/s.")
EOF
echo
"${CLIENT[@]}" table "${results[@]}"
mkdir -p "$WORK/results" && cp "${results[@]}" "$TMP/baseline.json" "$TMP/client.json" "$WORK/results/"
