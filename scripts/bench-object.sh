#!/usr/bin/env bash
# Object pair benchmark: the release ferry binary (`ferry initialize`, `ferry update` of a
# kind = "object" pair) against `rclone sync` between two s3s-fs servers on loopback, same servers,
# same data, same run. Data: SMALL objects of 4-64 KiB (default 10,000) plus BIG objects of
# 64 MiB (default 10); then 1 % of the small objects rewritten; then nothing changed.
# Prints wall seconds of each process and ferry/rclone ratios (lower is better; targets: initial
# <= 1.0, update <= 0.5). Needs s3s-fs (scripts/s3s-fs.sh) and rclone (Debian).
#   SMALL=2000 BIG=2 scripts/bench-object.sh     # a quicker run
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
SMALL=${SMALL:-10000}
BIG=${BIG:-10}
command -v s3s-fs >/dev/null || { echo "s3s-fs is missing: run scripts/s3s-fs.sh" >&2; exit 2; }
command -v rclone >/dev/null || { echo "rclone is missing: apt-get install -y rclone" >&2; exit 2; }
unset AWS_CA_BUNDLE # rclone 1.60 fails on it (LoadCustomCABundleError)
export RCLONE_CONFIG=/dev/null

. scripts/lib.sh
build_release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-object.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
start_server() { # NAME ROOT PORT
    local pid
    pid=$(start_s3s_fs "$2" "$3" "AK$1" "SK$1-secret") || exit 1
    PIDS+=("$pid")
}
PA=$(free_port); PB=$(free_port)
mkdir -p "$WORK/a/src-bucket" "$WORK/b/ferry-dst" "$WORK/b/rclone-dst"
start_server A "$WORK/a" "$PA"
start_server B "$WORK/b" "$PB"
for n in A B; do
    port=$PA; [ $n = B ] && port=$PB
    export RCLONE_CONFIG_S${n}_TYPE=s3 RCLONE_CONFIG_S${n}_PROVIDER=Other RCLONE_CONFIG_S${n}_FORCE_PATH_STYLE=true
    export RCLONE_CONFIG_S${n}_ENDPOINT=http://127.0.0.1:$port
    export RCLONE_CONFIG_S${n}_ACCESS_KEY_ID=AK$n RCLONE_CONFIG_S${n}_SECRET_ACCESS_KEY=SK$n-secret
done
# s3s-fs answers ListR's empty delimiter with nothing: rclone walks directories
export RCLONE_DISABLE=ListR
printf '[default]\naws_access_key_id = AKA\naws_secret_access_key = SKA-secret\n' >"$WORK/a.cred"
printf '[default]\naws_access_key_id = AKB\naws_secret_access_key = SKB-secret\n' >"$WORK/b.cred"
cat >"$WORK/ferry.toml" <<EOF
state_dir = "$WORK/state"
[hosts.sa]
endpoint = "http://127.0.0.1:$PA"
credentials = "$WORK/a.cred"
[hosts.sb]
endpoint = "http://127.0.0.1:$PB"
credentials = "$WORK/b.cred"
[[pair]]
kind = "object"
source = "sa:src-bucket"
destination = "sb:ferry-dst"
EOF

echo "== data: $SMALL objects of 4-64 KiB + $BIG of 64 MiB, written by rclone"
mkdir -p "$WORK/data/small" "$WORK/data/big"
python3 - "$WORK/data" "$SMALL" "$BIG" <<'PY'
import os, random, sys
root, small, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(7)
for i in range(small):
    d = os.path.join(root, "small", f"{i // 1000:03d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(rnd.randint(4, 64) * 1024))
for i in range(big):
    with open(os.path.join(root, "big", f"{i:02d}.bin"), "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
PY
rclone copy --transfers 16 "$WORK/data" SA:src-bucket

secs() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN{printf "%.2f", e-s}'; }
ratio() { awk -v f="$1" -v r="$2" 'BEGIN{printf "%.2f", f/r}'; }
row() { # LABEL FERRY-ACTION TARGET
    local f r
    f=$(secs "$FERRY" -c "$WORK/ferry.toml" "$2" sb:ferry-dst)
    r=$(secs rclone sync --transfers 16 --checkers 16 SA:src-bucket SB:rclone-dst)
    printf '%-12s ferry %7.2f s  rclone sync %7.2f s  ratio %s  (target <= %s)\n' "$1" "$f" "$r" "$(ratio "$f" "$r")" "$3"
}
echo "== wall time of each process (ferry: release binary, its config; rclone: 16 transfers, 16 checkers)"
row initial initialize 1.0
python3 - "$WORK/data" "$SMALL" <<'PY'
import os, sys
root, small = sys.argv[1], int(sys.argv[2])
for i in range(0, small, 100):   # 1 %
    with open(os.path.join(root, "small", f"{i // 1000:03d}", f"{i:06d}.bin"), "wb") as f:
        f.write(os.urandom(8192))
PY
rclone copy --transfers 16 "$WORK/data" SA:src-bucket
row "1% changed" update 0.5
row no-op update 0.5
echo "== ferry's pair log (where its time went)"
grep -h "" "$WORK"/state/*/log | sed 's/^/  /'
# the bytes themselves (multipart ETags differ between uploaders)
if rclone check --download --checkers 16 SA:src-bucket SB:ferry-dst 2>/dev/null; then
    echo "ferry's destination holds the source's bytes (rclone check --download)"
else
    echo "ferry's destination DIFFERS from the source" >&2; exit 1
fi
