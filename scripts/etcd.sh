#!/usr/bin/env bash
# etcd (Debian's etcd-server) on free loopback ports, its data under DIR: the coordination
# engine of the demo lab and the failover benchmark. Idempotent; prints the client endpoint.
#
#   scripts/etcd.sh up DIR      start (or find running) and print http://127.0.0.1:PORT
#   scripts/etcd.sh down DIR    stop it (DIR stays)
set -euo pipefail
cmd=${1:?usage: scripts/etcd.sh up|down DIR}
dir=$(realpath -m "${2:?usage: scripts/etcd.sh up|down DIR}")
pidf=$dir/etcd.pid portf=$dir/etcd.port
running() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
. "$(dirname "$0")/lib.sh"

if [ "$cmd" = down ]; then
    if running; then
        kill "$(cat "$pidf")" 2>/dev/null || true
        for _ in $(seq 50); do running || break; sleep 0.1; done
    fi
    rm -f "$pidf"
    exit 0
fi
[ "$cmd" = up ] || { echo "usage: scripts/etcd.sh up|down DIR" >&2; exit 2; }
command -v etcd >/dev/null || { echo "etcd is missing: apt-get install -y etcd-server (scripts/deps.sh)" >&2; exit 2; }
mkdir -p "$dir"
if ! running; then
    # the same ports again after a restart: etcd keeps its member's peer URL in its data
    if [ -f "$dir/etcd.ports" ]; then read -r port peer <"$dir/etcd.ports"; else port=$(free_port) peer=$(free_port); fi
    echo "$port $peer" >"$dir/etcd.ports"
    etcd --name ferrylab --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "ferrylab=http://127.0.0.1:$peer" >"$dir/etcd.log" 2>&1 &
    echo $! >"$pidf"
    echo "$port" >"$portf"
    for _ in $(seq 150); do
        curl -sf -X POST -d '{}' "http://127.0.0.1:$port/v3/maintenance/status" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -sf -X POST -d '{}' "http://127.0.0.1:$port/v3/maintenance/status" >/dev/null \
        || { echo "etcd did not answer on port $port (see $dir/etcd.log)" >&2; exit 1; }
fi
echo "http://127.0.0.1:$(cat "$portf")"
