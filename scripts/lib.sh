#!/usr/bin/env bash
# Shared by the project's scripts (source it: `. scripts/lib.sh`): free loopback ports, waiting
# for a server to listen, the s3s-fs servers the object labs and benchmarks run, and the
# benchmarks' preamble (one release build of ferry).

# A free TCP port on 127.0.0.1 (the kernel's choice; another process may take it before the
# caller binds it, so starters retry or check).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [TRIES] [SLEEP]: returns when 127.0.0.1:PORT accepts, 1 after TRIES.
wait_port() {
    local port=$1 tries=${2:-200} pause=${3:-0.05}
    for _ in $(seq "$tries"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep "$pause"
    done
    return 1
}

# start_s3s_fs ROOT PORT ACCESS_KEY SECRET_KEY [LOG]: an s3s-fs server on 127.0.0.1:PORT serving
# the directories under ROOT as buckets; prints its pid, returns once it listens.
start_s3s_fs() {
    local root=$1 port=$2 ak=$3 sk=$4 log=${5:-/dev/null}
    command -v s3s-fs >/dev/null || { echo "s3s-fs is missing: run scripts/s3s-fs.sh" >&2; return 2; }
    mkdir -p "$root"
    s3s-fs --host 127.0.0.1 --port "$port" --access-key "$ak" --secret-key "$sk" "$root" >"$log" 2>&1 &
    local pid=$!
    wait_port "$port" || { echo "s3s-fs on port $port did not start (log: $log)" >&2; kill "$pid" 2>/dev/null; return 1; }
    echo "$pid"
}

# The benchmarks' preamble: a release build (measure release builds), its path in $FERRY.
build_release() {
    echo "== release build of ferry"
    nice -n 10 cargo build --release --quiet
    FERRY=$PWD/target/release/ferry
    export FERRY
}
