#!/usr/bin/env bash
# Object replication benchmark: one ferry pass against `rclone sync` between two s3s-fs servers on
# loopback, same data, same run: 200 small objects (4-64 KiB) + one 20 MiB object (initial copy),
# then 5 changed, then no change. Prints seconds and ferry/rclone ratios (lower is better).
# Needs s3s-fs (scripts/s3s-fs.sh) and rclone (apt-get install -y rclone).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
command -v s3s-fs >/dev/null || { echo "s3s-fs is missing: run scripts/s3s-fs.sh" >&2; exit 2; }
command -v rclone >/dev/null || { echo "rclone is missing: apt-get install -y rclone" >&2; exit 2; }
unset AWS_CA_BUNDLE # rclone 1.60 fails on it (LoadCustomCABundleError)

echo "== release build of the pass driver (tests/object_bench.rs)"
EXE=$(nice -n 15 cargo test --release --test object_bench --no-run 2>&1 | sed -n 's/.*Executable.*(\(.*\)).*/\1/p' | tail -1)
[ -x "$EXE" ] || { echo "no driver binary" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-object.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_server() { # NAME ROOT PORT
    mkdir -p "$2"
    s3s-fs --host 127.0.0.1 --port "$3" --access-key "AK$1" --secret-key "SK$1-secret" "$2" >/dev/null 2>&1 &
    PIDS+=($!)
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$3") 2>/dev/null && return; sleep 0.05; done
    echo "s3s-fs $1 did not start" >&2; exit 1
}
PA=$(free_port); PB=$(free_port)
mkdir -p "$WORK/a/src-bucket" "$WORK/b/ferry-dst" "$WORK/b/rclone-dst"
start_server A "$WORK/a" "$PA"
start_server B "$WORK/b" "$PB"
for n in A B; do
    port=$PA; [ $n = B ] && port=$PB
    export RCLONE_CONFIG_S${n}_TYPE=s3 RCLONE_CONFIG_S${n}_PROVIDER=Other
    export RCLONE_CONFIG_S${n}_ENDPOINT=http://127.0.0.1:$port
    export RCLONE_CONFIG_S${n}_ACCESS_KEY_ID=AK$n RCLONE_CONFIG_S${n}_SECRET_ACCESS_KEY=SK$n-secret
done
export BENCH_SRC_ENDPOINT=http://127.0.0.1:$PA BENCH_SRC_BUCKET=src-bucket BENCH_SRC_KEY=AKA BENCH_SRC_SECRET=SKA-secret
export BENCH_DST_ENDPOINT=http://127.0.0.1:$PB BENCH_DST_BUCKET=ferry-dst BENCH_DST_KEY=AKB BENCH_DST_SECRET=SKB-secret
export BENCH_STATE=$WORK/state

echo "== data: 200 objects of 4-64 KiB + one of 20 MiB, written by rclone"
mkdir -p "$WORK/data/small"
for i in $(seq -w 1 200); do head -c $(( (RANDOM % 61 + 4) * 1024 )) /dev/urandom >"$WORK/data/small/$i.bin"; done
head -c $((20 << 20)) /dev/urandom >"$WORK/data/big.bin"
rclone copy "$WORK/data" SA:src-bucket

# Wall seconds of one pass, from process start to exit, for both tools; then ferry's report.
ferry_pass() {
    local s e out; s=$(date +%s.%N); out=$("$EXE" --ignored --exact bench_pass --nocapture 2>/dev/null | grep '^BENCH'); e=$(date +%s.%N)
    awk -v s="$s" -v e="$e" -v o="$out" 'BEGIN{printf "%.3f %s\n", e-s, o}'
}
rclone_pass() { local s e; s=$(date +%s.%N); rclone sync SA:src-bucket SB:rclone-dst; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{printf "%.3f", e-s}'; }
ratio() { awk -v f="$1" -v r="$2" 'BEGIN{printf "%.2f", f/r}'; }
row() { # LABEL
    local f r; read -r f fline < <(ferry_pass); r=$(rclone_pass)
    printf '%-10s ferry %6.3f s  rclone %6.3f s  ratio %s   (%s)\n' "$1" "$f" "$r" "$(ratio "$f" "$r")" "${fline#BENCH * }"
}
echo "== passes (wall time of each process)"
row initial
for i in 007 042 099 150 188; do head -c 8192 /dev/urandom >"$WORK/data/small/$i.bin"; rclone copyto "$WORK/data/small/$i.bin" "SA:src-bucket/small/$i.bin"; done
row 5-changed
row no-op
diff <(rclone lsf -R --format hp SB:ferry-dst | sort) <(rclone lsf -R --format hp SB:rclone-dst | sort) >/dev/null &&
    echo "destinations agree (paths and hashes)" || { echo "destinations DIFFER" >&2; exit 1; }
