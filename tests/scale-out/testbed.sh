#!/usr/bin/env bash
# A scale-out test bed on loopback (docs/scale-out.md): a 3-node Garage
# cluster (replication factor 3), HAProxy in front of it and of two aioftpd
# instances that share one config and one bucket, each instance behind the
# PROXY protocol with its own passive range.
#
#     tests/scale-out/testbed.sh DIR
#
# runs in the foreground until it gets SIGTERM or SIGINT (Ctrl-C), then
# stops everything it started. Every process it starts dies with it, even
# if it is killed outright (setpriv --pdeathsig). When all is up it writes
# DIR/env (what a client needs, as shell assignments) and prints "ready".
# DIR/pids/<name> holds each process's pid; DIR/*.log their output.
#
# Hosts:
#   127.0.0.30              HAProxy: FTP control :2100 (balanced), :2101
#                           (instance a only), :2102 (b only); passive
#                           :50000-50049 (a), :50050-50099 (b); S3 :3900
#   127.0.0.31, 127.0.0.32  aioftpd a and b: proxied control :2121
#   127.0.0.41-43           Garage nodes: S3 :3900, RPC :3901
#
# Env: AIOFTPD (target/debug/aioftpd), GARAGE ($GARAGE, else the binary
# .ci/run caches), HAPROXY (haproxy).
set -euo pipefail

DIR=${1:?usage: testbed.sh DIR}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
AIOFTPD=${AIOFTPD:-$REPO/target/debug/aioftpd}
GARAGE=${GARAGE:-/var/cache/aioftpd-tools/garage-2.5.0/bin/garage}
HAPROXY=${HAPROXY:-haproxy}
BUCKET=aioftpd-scale-out
REGION=garage
FRONT=127.0.0.30
NODES=(127.0.0.41 127.0.0.42 127.0.0.43)
INSTANCES=(a b)
declare -A INSTANCE_IP=([a]=127.0.0.31 [b]=127.0.0.32)
declare -A PASSIVE=([a]=50000-50049 [b]=50050-50099)

for tool in "$AIOFTPD" "$GARAGE" "$HAPROXY" curl setpriv openssl; do
    command -v "$tool" >/dev/null || { echo "testbed: $tool not found" >&2; exit 69; }
done
mkdir -p "$DIR/pids"
DIR=$(cd "$DIR" && pwd)

stop_all() {
    trap - EXIT INT TERM
    for pidfile in "$DIR"/pids/*; do
        [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# start NAME COMMAND...: in the background, killed if this script dies.
start() {
    local name=$1
    shift
    setpriv --pdeathsig KILL "$@" >"$DIR/$name.log" 2>&1 &
    echo $! >"$DIR/pids/$name"
}

# until TRIES COMMAND...: retries COMMAND every 0.1 s, at most TRIES times.
until_ok() {
    local tries=$1
    shift
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "testbed: gave up waiting for: $*" >&2
    return 1
}

# ---- Garage: three nodes, one zone each, every object on all three -------
secret=$(openssl rand -hex 32)
for i in "${!NODES[@]}"; do
    ip=${NODES[$i]}
    mkdir -p "$DIR/garage$i"
    cat >"$DIR/garage$i/garage.toml" <<EOF
metadata_dir = "$DIR/garage$i/meta"
data_dir = "$DIR/garage$i/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "$ip:3901"
rpc_public_addr = "$ip:3901"
rpc_secret = "$secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "$ip:3900"
root_domain = ".s3.garage.localhost"
EOF
    start "garage$i" "$GARAGE" -c "$DIR/garage$i/garage.toml" server
done
garage() { "$GARAGE" -c "$DIR/garage0/garage.toml" "$@"; }
# The cluster's admin CLI, for a person or a test: DIR/garage-cli status.
printf '#!/bin/sh\nexec "%s" -c "%s" "$@"\n' "$GARAGE" "$DIR/garage0/garage.toml" >"$DIR/garage-cli"
chmod +x "$DIR/garage-cli"
ids=()
for i in "${!NODES[@]}"; do
    until_ok 100 "$GARAGE" -c "$DIR/garage$i/garage.toml" node id -q
    ids+=("$("$GARAGE" -c "$DIR/garage$i/garage.toml" node id -q 2>/dev/null)")
done
for id in "${ids[@]:1}"; do
    until_ok 100 garage node connect "$id"
done
for i in "${!ids[@]}"; do
    garage layout assign -z "dc$i" -c 1G "${ids[$i]%@*}" >/dev/null
done
garage layout apply --version 1 >/dev/null
key_id=GK$(openssl rand -hex 12)
key_secret=$(openssl rand -hex 32)
garage key import --yes -n aioftpd "$key_id" "$key_secret" >/dev/null
until_ok 100 garage bucket create "$BUCKET"
garage bucket allow --read --write --owner "$BUCKET" --key "$key_id" >/dev/null
umask 077
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "$key_id" "$key_secret" >"$DIR/s3.key"
umask 022

# ---- HAProxy: S3 over the three nodes; FTP over the two instances --------
{
    cat <<EOF
defaults
    mode tcp
    timeout connect 2s
    timeout client 10m
    timeout server 10m

frontend s3
    bind $FRONT:3900
    default_backend garage
backend garage
    balance roundrobin
    # A connection refused by a node that stopped goes to another; one
    # under way to it fails. Checks take the node out within a second.
    option redispatch
    retries 2
    default-server check inter 300ms fall 1 rise 2
EOF
    for i in "${!NODES[@]}"; do echo "    server node$i ${NODES[$i]}:3900"; done
    cat <<EOF

frontend ftp
    bind $FRONT:2100
    default_backend aioftpd
backend aioftpd
    source $FRONT
    balance roundrobin
    option tcp-check
    tcp-check expect rstring ^220
    default-server send-proxy-v2 check check-send-proxy inter 1s
EOF
    for n in "${INSTANCES[@]}"; do echo "    server $n ${INSTANCE_IP[$n]}:2121"; done
    port=2101
    for n in "${INSTANCES[@]}"; do
        cat <<EOF

frontend ftp_$n
    bind $FRONT:$port
    default_backend aioftpd_$n
backend aioftpd_$n
    source $FRONT
    server $n ${INSTANCE_IP[$n]}:2121 send-proxy-v2
frontend data_$n
    bind $FRONT:${PASSIVE[$n]}
    default_backend data_$n
backend data_$n
    source $FRONT
    server $n ${INSTANCE_IP[$n]} send-proxy-v2
EOF
        port=$((port + 1))
    done
} >"$DIR/haproxy.cfg"
start haproxy "$HAPROXY" -db -f "$DIR/haproxy.cfg"

# S3 through HAProxy answers once the layout is in force on every node.
# The hash of an empty body: S3 wants it named in a signed request.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_ready() {
    curl -sf --max-time 5 --aws-sigv4 "aws:amz:$REGION:s3" --user "$key_id:$key_secret" \
        -H "x-amz-content-sha256: $EMPTY_SHA256" \
        "http://$FRONT:3900/$BUCKET?list-type=2&max-keys=1" >/dev/null
}
until_ok 200 s3_ready

# ---- aioftpd: two instances, one config but for addresses ----------------
password=$(openssl rand -hex 12)
hash=$(printf '%s\n' "$password" | "$AIOFTPD" hash-password)
for n in "${INSTANCES[@]}"; do
    cat >"$DIR/aioftpd-$n.toml" <<EOF
[server]
listen = []
idle_timeout = "10m"

[proxy_protocol]
listen = ["${INSTANCE_IP[$n]}:2121"]
trusted = ["$FRONT"]

[passive]
ports = "${PASSIVE[$n]}"
public_address = "$FRONT"

[login]
failure_delay = "0s"

[[users]]
login = "alice"
password = "$hash"
storage = "s3"
s3 = { endpoint = "http://$FRONT:3900", bucket = "$BUCKET", region = "$REGION", prefix = "alice/", credentials_file = "$DIR/s3.key" }
permissions = [{ path = "/", readable = true, writable = true }]
EOF
    start "aioftpd-$n" "$AIOFTPD" run --config "$DIR/aioftpd-$n.toml"
done
for n in "${INSTANCES[@]}"; do
    # An instance that refuses its config stops the bed, with its reasons.
    until_ok 50 grep -q listening "$DIR/aioftpd-$n.log" || {
        cat "$DIR/aioftpd-$n.log" >&2
        exit 1
    }
done
greets() { exec 3<>"/dev/tcp/$FRONT/$1" && read -r -t 2 line <&3 && [[ $line == 220* ]]; }
until_ok 100 greets 2101
until_ok 100 greets 2102

cat >"$DIR/env" <<EOF
FTP_HOST=$FRONT
FTP_PORT=2100
FTP_PORT_A=2101
FTP_PORT_B=2102
FTP_USER=alice
FTP_PASS=$password
S3_ENDPOINT=http://$FRONT:3900
S3_REGION=$REGION
S3_BUCKET=$BUCKET
S3_PREFIX=alice/
S3_KEY_ID=$key_id
S3_SECRET=$key_secret
EOF
echo ready
wait
