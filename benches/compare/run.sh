#!/usr/bin/env bash
# Side-by-side benchmark: aioftpd against vsftpd, pure-ftpd, ProFTPD,
# pyftpdlib and aioftp on loopback (issue 6). Run as root from the repo:
#
#     benches/compare/run.sh
#
# Env (default in parentheses):
#   SIZE_MB (1024)          RETR/STOR/FTPS file size, MiB
#   RUNS (3)                runs of each workload; the median is reported
#   MULTI_CLIENTS (50), MULTI_MB (20)
#                           concurrent clients each RETR one shared file of MULTI_MB MiB
#   SMALL_FILES (2000), SMALL_KB (4), SMALL_WORKERS (8)
#                           small-file STOR and RETR (SMALL_FILES <= 100000)
#   LOGIN_WORKERS (20), LOGIN_SECONDS (3)
#                           login workers and how long they run, anonymous
#                           and with a password
#   IDLE_SESSIONS (200)     sessions for the memory-per-session figure
#   BURST_SESSIONS (500)    password logins sent at once and held as idle
#                           sessions: PSS per session, and what is left after
#   MANY_SESSIONS (10000), MANY_PROCS (10), MANY_SERVERS ("aioftpd pyftpdlib")
#                           idle sessions held open at once (from MANY_PROCS
#                           client processes) on the servers in MANY_SERVERS
#   LIST_ENTRIES (10000)    files in the listed directory
#   BENCH_USER (bench)      system user made for password logins, removed at exit
#   SERVERS ("aioftpd vsftpd pure-ftpd proftpd pyftpdlib aioftp")
#   WORK (/var/tmp/aioftpd-compare)  peers' binaries and test data, kept
#   CARGO_TARGET_DIR (target)        where aioftpd and the load generator are built
#
# The client is benches/compare/client.py (Python, standard library only),
# except for logins, small files and FTPS, where a Python client was the
# bottleneck: those run in examples/loadgen.rs, built here and passed to
# client.py as LOADGEN.
#
# Debian's FTP server packages conflict with each other (all provide
# ftp-server), so the peers are fetched with `apt-get download` and unpacked
# with `dpkg -x` under $WORK/peers; none is installed as a service, and each
# runs in the foreground on its own 127.0.0.1 port, one at a time. Each
# server runs twice: "plain" (anonymous, no TLS: the configuration of the
# plain workloads) and "secure" (TLS and the password user added: FTPS and
# password logins). unFTP is in neither Debian nor PyPI and is skipped.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/benches/compare"
WORK=${WORK:-/var/tmp/aioftpd-compare}
SERVERS=${SERVERS:-"aioftpd vsftpd pure-ftpd proftpd pyftpdlib aioftp"}
export SIZE_MB="${SIZE_MB:-1024}" RUNS="${RUNS:-3}" \
    LOGIN_WORKERS="${LOGIN_WORKERS:-20}" LOGIN_SECONDS="${LOGIN_SECONDS:-3}" \
    IDLE_SESSIONS="${IDLE_SESSIONS:-200}" LIST_ENTRIES="${LIST_ENTRIES:-10000}" \
    MULTI_CLIENTS="${MULTI_CLIENTS:-50}" MULTI_MB="${MULTI_MB:-20}" \
    SMALL_FILES="${SMALL_FILES:-2000}" SMALL_KB="${SMALL_KB:-4}" \
    SMALL_WORKERS="${SMALL_WORKERS:-8}" MANY_SESSIONS="${MANY_SESSIONS:-10000}" \
    MANY_PROCS="${MANY_PROCS:-10}" MANY_SERVERS="${MANY_SERVERS:-aioftpd pyftpdlib}" \
    BURST_SESSIONS="${BURST_SESSIONS:-500}" BENCH_USER="${BENCH_USER:-bench}"
PEERS="$WORK/peers/root"
export DATA="$WORK/data"
TMP=$(mktemp -d /tmp/aioftpd-compare.XXXXXX)
CLIENT=(python3 "$HERE/client.py")
AIOFTPD="${CARGO_TARGET_DIR:-$REPO/target}/release/aioftpd"
export LOADGEN="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/loadgen"
# Connection limits high enough for MANY_SESSIONS where they are configurable.
MAXCONN=$((MANY_SESSIONS + 1000 > 4096 ? MANY_SESSIONS + 1000 : 4096))
# A fresh password each run: the system user exists only while this runs.
BENCH_PASS=$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
export BENCH_PASS TLS_CERT="$TMP/tls-cert.pem" TLS_KEY="$TMP/tls-key.pem"
BENCH_MARK="aioftpd-compare benchmark user"
PAM_PREFIX=/etc/pam.d/aioftpd-compare-
SERVER_PID=
FTP_HOME_WAS=
BENCH_USER_MADE=
# Peers that cannot be measured over FTPS, and why (shown in the notes).
declare -A NO_TLS=(
    [aioftp]="not measured: aioftp's command-line server (python3 -m aioftp) has no TLS option, and its server does not implement AUTH TLS"
)

log() { echo "== $*" >&2; }

cleanup() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $FTP_HOME_WAS ]]; then usermod -d "$FTP_HOME_WAS" ftp; fi
    if [[ -n $BENCH_USER_MADE ]]; then userdel "$BENCH_USER" 2>/dev/null || true; fi
    rm -f "$PAM_PREFIX"vsftpd "$PAM_PREFIX"proftpd
    rm -rf "$TMP" "$DATA/spent"
}
trap cleanup EXIT

[[ $(id -u) == 0 ]] || { echo "run as root (peers need it to chroot)" >&2; exit 1; }

# One descriptor per session in the server, and some for the clients.
if (($(ulimit -n) < MANY_SESSIONS + 4096)); then
    ulimit -n $((MANY_SESSIONS + 4096)) ||
        { echo "cannot raise ulimit -n to $((MANY_SESSIONS + 4096))" >&2; exit 1; }
fi

# ---- peers -----------------------------------------------------------------
install_peers() {
    if [[ -x $PEERS/usr/sbin/vsftpd && -x $PEERS/usr/sbin/pure-ftpd && -x $PEERS/usr/sbin/proftpd &&
        -f $PEERS/usr/lib/proftpd/mod_tls.so ]]; then
        return
    fi
    log "fetching vsftpd, pure-ftpd, proftpd-core, proftpd-mod-crypto (apt-get download + dpkg -x)"
    apt-get update -qq
    # proftpd-mod-crypto holds ProFTPD's mod_tls, loaded with LoadModule.
    local pkgs="vsftpd pure-ftpd proftpd-core proftpd-mod-crypto" libs
    # Their shared libraries install fine side by side; the servers do not.
    libs=$(for p in $pkgs; do apt-cache depends "$p" | awk '/Depends: lib/{print $2}'; done | sort -u)
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $libs >/dev/null
    mkdir -p "$WORK/peers"
    # shellcheck disable=SC2086
    (cd "$WORK/peers" && apt-get download $pkgs 2>/dev/null && for d in *.deb; do dpkg -x "$d" root; done)
}

install_python_peers() {
    # pyOpenSSL: pyftpdlib's TLS_FTPHandler (--tls) needs it.
    python3 -c 'import pyftpdlib, aioftp, OpenSSL' 2>/dev/null || pip install -q pyftpdlib aioftp pyopenssl
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

# ---- TLS and the password user ---------------------------------------------
make_certificate() {
    # One self-signed certificate for every server; the client verifies it.
    # CA:FALSE: openssl marks a self-signed certificate as a CA by default,
    # and the load generator's verifier (rustls, webpki) refuses a CA
    # certificate as a server's.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$TLS_KEY" -out "$TLS_CERT" 2>/dev/null
    cat "$TLS_KEY" "$TLS_CERT" >"$TMP/tls-both.pem" # pure-ftpd wants both in one file
}

make_bench_user() {
    # A user left by an interrupted run carries our mark: remove it. Any
    # other user of that name is someone's: refuse.
    if getent passwd "$BENCH_USER" >/dev/null; then
        if [[ $(getent passwd "$BENCH_USER" | cut -d: -f5) == "$BENCH_MARK" ]]; then
            userdel "$BENCH_USER"
        else
            echo "a user named $BENCH_USER exists; set BENCH_USER to another name" >&2
            exit 1
        fi
    fi
    # Home = the data: every server chroots (or roots) the user there, so the
    # same paths work for it as for anonymous. /bin/sh: PAM's pam_shells.
    useradd -M -d "$DATA" -s /bin/sh -c "$BENCH_MARK" "$BENCH_USER"
    BENCH_USER_MADE=1
    printf '%s:%s\n' "$BENCH_USER" "$BENCH_PASS" | chpasswd
    log "system user $BENCH_USER: password hashed as \$$(getent shadow "$BENCH_USER" | cut -d'$' -f2)\$ (y = yescrypt, 6 = sha512crypt)"
    # The PAM services the packages would install, under names of our own,
    # so an installed vsftpd or ProFTPD keeps its files.
    cp "$PEERS/etc/pam.d/vsftpd" "${PAM_PREFIX}vsftpd"
    cp "$PEERS/etc/pam.d/proftpd" "${PAM_PREFIX}proftpd"
    BENCH_HASH=$(printf '%s\n' "$BENCH_PASS" | "$AIOFTPD" hash-password)
}

# ---- data ------------------------------------------------------------------
# An empty up/ that anyone may write, made anew: an ext4 directory does not
# shrink when its files go, and new files in one that had held many are
# slower to make (aioftpd's small-file STOR: 7,500 files/s in a fresh
# directory, 4,000 after 12,000 files were deleted from it).
#
# The old one's small files are not deleted until the end: on an ext4
# without a journal (this VM's), making a file skips every inode freed in
# the last 5-10 s, one inode table lookup each (find_inode_bit ->
# recently_deleted in perf), so deleting the last server's 2,000 files
# just before the next one's small-file STOR took every server from ~6,000
# to ~1,600 files/s. The 1 GiB uploads are few inodes and go now.
fresh_upload_dir() {
    if [[ -d $DATA/up ]]; then
        find "$DATA/up" -type f -size +1M -delete
        mkdir -p "$DATA/spent"
        mv "$DATA/up" "$DATA/spent/up.$(date +%s%N)"
    fi
    mkdir -m 1777 "$DATA/up"
}

prepare_data() {
    # Root-owned, not writable by the ftp user (vsftpd refuses a writable
    # chroot); uploads go to up/, which anyone may write.
    mkdir -p "$DATA/list" "$DATA/small"
    chmod 755 "$DATA" "$DATA/list" "$DATA/small"
    fresh_upload_dir
    local name mb
    for name in big multi; do
        if [[ $name == big ]]; then mb=$SIZE_MB; else mb=$MULTI_MB; fi
        if [[ $(stat -c %s "$DATA/$name.bin" 2>/dev/null || echo 0) != $((mb << 20)) ]]; then
            log "writing a $mb MiB file ($name.bin)"
            head -c $((mb << 20)) /dev/urandom >"$DATA/$name.bin"
        fi
        chmod 644 "$DATA/$name.bin"
    done
    if [[ $(find "$DATA/list" -maxdepth 1 -type f | wc -l) != "$LIST_ENTRIES" ]]; then
        log "creating $LIST_ENTRIES empty files"
        rm -rf "$DATA/list" && mkdir "$DATA/list"
        (cd "$DATA/list" && seq -f "file-%05.0f.txt" 1 "$LIST_ENTRIES" | xargs touch)
        chmod 644 "$DATA"/list/*
    fi
    # Names f-00000, f-00001, ... as client.py expects them.
    local small=$((SMALL_KB << 10))
    if [[ $(find "$DATA/small" -maxdepth 1 -type f | wc -l) != "$SMALL_FILES" ||
        $(stat -c %s "$DATA/small/f-00000" 2>/dev/null || echo 0) != "$small" ]]; then
        log "creating $SMALL_FILES files of $SMALL_KB KiB"
        rm -rf "$DATA/small" && mkdir -m 755 "$DATA/small"
        head -c $((SMALL_FILES * small)) /dev/urandom | split -b "$small" -a 5 -d - "$DATA/small/f-"
        find "$DATA/small" -type f -exec chmod 644 {} +
    fi
    # Into the page cache before measuring.
    cat "$DATA/big.bin" "$DATA/multi.bin" "$DATA"/small/* >/dev/null
}

# ---- servers: start_NAME PORT MODE, MODE "plain" or "secure" ----------------
wait_port() {
    for _ in $(seq 100); do
        if ss -ltn "sport = :$1" | grep -q LISTEN; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_aioftpd() {
    {
        cat <<EOF
[server]
listen = ["127.0.0.1:$1"]
max_connections = $MAXCONN
max_connections_per_ip = $MAXCONN
idle_timeout = "10m"
[login]
failure_delay = "0s"
[[users]]
storage = "fs"
base_path = "$DATA"
permissions = [{ path = "/", readable = true, writable = true }]
EOF
        # Everything else default: argon2 hash, credential cache, and the
        # data connection must resume the control connection's TLS session.
        [[ $2 == plain ]] || cat <<EOF
[[users]]
login = "$BENCH_USER"
password = "$BENCH_HASH"
base_path = "$DATA"
[tls]
certificate = "$TLS_CERT"
private_key = "$TLS_KEY"
EOF
    } >"$TMP/aioftpd-$2.toml"
    "$AIOFTPD" run --config "$TMP/aioftpd-$2.toml" --log-level warn &
}

start_vsftpd() {
    mkdir -p /var/run/vsftpd/empty
    local local_enable=NO
    [[ $2 == plain ]] || local_enable=YES
    {
        cat <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$1
background=NO
anonymous_enable=YES
no_anon_password=NO
anon_root=$DATA
local_enable=$local_enable
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
        # TLS optional (force_*_ssl=NO) so password logins can be plain too;
        # require_ssl_reuse=YES is its default, spelled out.
        [[ $2 == plain ]] || cat <<EOF
chroot_local_user=YES
pam_service_name=${PAM_PREFIX#/etc/pam.d/}vsftpd
ssl_enable=YES
rsa_cert_file=$TLS_CERT
rsa_private_key_file=$TLS_KEY
force_local_logins_ssl=NO
force_local_data_ssl=NO
require_ssl_reuse=YES
EOF
    } >"$TMP/vsftpd-$2.conf"
    "$PEERS/usr/sbin/vsftpd" "$TMP/vsftpd-$2.conf" &
}

start_pure_ftpd() {
    # pure-ftpd serves anonymous users the ftp account's home directory.
    FTP_HOME_WAS=$(getent passwd ftp | cut -d: -f6)
    usermod -d "$DATA" ftp
    # -c/-C: no client caps in the way; -H: no reverse DNS; -A: chroot all.
    # Secure: -l unix (the password from /etc/shadow), -Y 1: TLS optional.
    local secure=()
    [[ $2 == plain ]] || secure=(-l unix -Y 1 -2 "$TMP/tls-both.pem")
    "$PEERS/usr/sbin/pure-ftpd" -S "127.0.0.1,$1" -c 1000 -C 1000 -H -A -I 10 "${secure[@]}" &
}

start_proftpd() {
    {
        [[ $2 == plain ]] || cat <<EOF
ModulePath $PEERS/usr/lib/proftpd
LoadModule mod_tls.c
EOF
        cat <<EOF
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
SystemLog $TMP/proftpd-$2.log
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
        # mod_tls' defaults otherwise, which include requiring the data
        # connection to reuse the control connection's TLS session.
        [[ $2 == plain ]] || cat <<EOF
AuthPAMConfig ${PAM_PREFIX#/etc/pam.d/}proftpd
DefaultRoot ~
TLSEngine on
TLSLog $TMP/proftpd-tls.log
TLSProtocol TLSv1.2 TLSv1.3
TLSRSACertificateFile $TLS_CERT
TLSRSACertificateKeyFile $TLS_KEY
TLSRequired off
EOF
    } >"$TMP/proftpd-$2.conf"
    "$PEERS/usr/sbin/proftpd" --nodaemon -c "$TMP/proftpd-$2.conf" &
}

start_pyftpdlib() {
    # --max-cons: its default, 512, would refuse MANY_SESSIONS. Its help says
    # --max-cons-per-ip defaults to unlimited, but the default is --max-cons;
    # 0 is unlimited.
    local secure=()
    [[ $2 == plain ]] || secure=(-u "$BENCH_USER" -P "$BENCH_PASS" --tls
        --certfile "$TLS_CERT" --keyfile "$TLS_KEY")
    # Its CLI logs every login and transfer at INFO with no option to quiet
    # it; the other servers log warnings only (aioftp -q: errors), so set its
    # logger to WARNING before running the same CLI.
    python3 -c 'import logging, pyftpdlib.log as l, pyftpdlib.__main__ as m
l.config_logging(level=logging.WARNING); m.main()' \
        -i 127.0.0.1 -p "$1" -d "$DATA" -w --max-cons "$MAXCONN" \
        --max-cons-per-ip 0 "${secure[@]}" &
}

start_aioftp() {
    local secure=()
    [[ $2 == plain ]] || secure=(--user "$BENCH_USER" --pass "$BENCH_PASS")
    python3 -m aioftp --host 127.0.0.1 --port "$1" --family ipv4 -d "$DATA" -q "${secure[@]}" &
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
    fresh_upload_dir
    if [[ -n $FTP_HOME_WAS ]]; then usermod -d "$FTP_HOME_WAS" ftp; FTP_HOME_WAS=; fi
    sleep 0.5
}

run_phase() { # NAME MODE JSON ROUND
    port=$((port + 1))
    log "$1 ($2) on 127.0.0.1:$port"
    "start_${1//-/_}" "$port" "$2" 2>"$TMP/$1-$2.log"
    SERVER_PID=$!
    if wait_port "$port"; then
        RUNS=1 ROUND=$4 "${CLIENT[@]}" bench "$1" "$2" "$port" "$SERVER_PID" "$3" "${NO_TLS[$1]:-}" ||
            log "the client failed on $1 ($2)"
    else
        tail -n 5 "$TMP/$1-$2.log" >&2
        "${CLIENT[@]}" fail "$1" "$2" "$3" "did not start: $(tail -n 1 "$TMP/$1-$2.log")"
    fi
    stop_server
}

# ---- run -------------------------------------------------------------------
install_peers
install_python_peers
stop_system_ftp
log "building aioftpd and the load generator (release)"
(cd "$REPO" && cargo build --release -q && cargo build --release -q --example loadgen)
prepare_data
make_certificate
make_bench_user

log "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
log "ceilings: raw sendfile (1 and $MULTI_CLIENTS streams), the client's plain and TLS readers"
"${CLIENT[@]}" ceilings "$TMP/ceilings.json" "$DATA/big.bin" "$DATA/multi.bin" "$TLS_CERT" "$TLS_KEY"

# In rounds: each round runs every server once, one after the other, and
# the medians are over the rounds. This VM has slow spells that last
# minutes; measured server by server, one could land on one server's runs.
port=2200
for round in $(seq "$RUNS"); do
    log "round $round of $RUNS"
    for s in $SERVERS; do
        for mode in plain secure; do
            run_phase "$s" "$mode" "$TMP/$s.round-$round.json" "$round"
        done
    done
done
results=()
for s in $SERVERS; do
    rounds=()
    for round in $(seq "$RUNS"); do
        if [[ -f $TMP/$s.round-$round.json ]]; then rounds+=("$TMP/$s.round-$round.json"); fi
    done
    if ((${#rounds[@]})); then
        "${CLIENT[@]}" merge "$TMP/$s.json" "${rounds[@]}"
        results+=("$TMP/$s.json")
    fi
done

echo
echo "Sizes: ${SIZE_MB} MiB file; ${MULTI_CLIENTS} clients × ${MULTI_MB} MiB (one shared file);" \
    "${SMALL_FILES} × ${SMALL_KB} KiB files, ${SMALL_WORKERS} workers; ${LIST_ENTRIES}-entry directory;" \
    "${LOGIN_WORKERS} login workers × ${LOGIN_SECONDS} s; ${IDLE_SESSIONS} idle sessions;" \
    "${BURST_SESSIONS} password logins at once;" \
    "${MANY_SESSIONS} sessions at once on ${MANY_SERVERS// /, }; median of ${RUNS}."
echo
"${CLIENT[@]}" table "$TMP/ceilings.json" "${results[@]}"
# The servers' own logs too: a warning from aioftpd during a run is a finding.
mkdir -p "$WORK/results" && cp "${results[@]}" "$TMP/ceilings.json" "$TMP"/*.log "$WORK/results/"
if grep -q . "$TMP"/aioftpd-*.log 2>/dev/null; then
    log "aioftpd logged during the run (kept in $WORK/results):"
    head -n 20 "$TMP"/aioftpd-*.log >&2
fi
