#!/usr/bin/env bash
# Block replication benchmark (release build): a VM image with 1 % of its 4 KiB blocks rewritten
# at random, brought up to date over the lab's loopback sshd (plain /bin/sh account) by
#
#   ferry update        (kind = "block", source on the sshd's host, replica here)
#   rsync -a --inplace --no-whole-file   (the usual tool for this, over the same sshd)
#
# each round the same changes for both; printed: wall seconds and bytes on the wire (ferry: the
# run's byte count, both directions; rsync: --stats' bytes sent + received), medians, and the
# ratios ferry / rsync (targets: wall <= 0.3, bytes <= 0.2). Then the same with the image on a
# loop-mounted btrfs and snapshot = "reflink" (ferry reads an instant clone).
# The scan rate against b3sum is scripts/bench-block.sh.
# Usage: scripts/bench-block-update.sh [ROUNDS]   (BENCH_MIB, default 1024; PERCENT, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
rounds=${1:-3}
mib=${BENCH_MIB:-1024}
percent=${PERCENT:-1}

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench-block
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
umount "$lab.btrfs" 2>/dev/null || true
LAB_POOL_SIZE=128M bash scripts/lab.sh up "$lab" >/dev/null
port=$(cat "$lab/sshd.port")
user=$(cat "$lab/ssh/user")
ssh_cmd="ssh -o BatchMode=yes -o UserKnownHostsFile=$lab/ssh/known_hosts -i $lab/ssh/id_ed25519 -p $port"
cleanup() {
    umount "$lab.btrfs" 2>/dev/null || umount -l "$lab.btrfs" 2>/dev/null || true
    bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
}
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# rewrites PERCENT % of the image's 4 KiB blocks at random places with new random data
scatter() {
    python3 - "$1" "$percent" <<'PYEOF'
import os, random, sys
path, pct = sys.argv[1], float(sys.argv[2])
blocks = os.path.getsize(path) // 4096
n = int(blocks * pct / 100)
with open(path, "r+b") as f:
    for b in random.sample(range(blocks), n):
        f.seek(b * 4096)
        f.write(os.urandom(4096))
print(n * 4096)
PYEOF
}

# one setting: the image at $1 (on the sshd's host), snapshot mode $2; prints the medians
bench() {
    local img=$1 snapshot=$2 name=$3
    local fdst=$lab/replicas/$name-ferry.img rdst=$lab/replicas/$name-rsync.img
    mkdir -p "$lab/replicas"
    rm -f "$fdst" "$rdst"
    rm -rf "$lab/replicas/.$name-ferry.img.ferry" "$(dirname "$img")/.ferry-snapshots"
    head -c "$((mib * 1048576))" /dev/urandom >"$img"
    cat >"$lab/block-$name.toml" <<EOF
state_dir = "$lab/state-$name"

[hosts.store1]
address = "127.0.0.1"
port = $port
user = "$user"
key = "$lab/ssh/id_ed25519"
known_hosts = "$lab/ssh/known_hosts"
ferry_path = "$ferry"

[[pair]]
kind = "block"
source = "store1:$img"
destination = "$fdst"
snapshot = "$snapshot"
EOF
    local f=("$ferry" -c "$lab/block-$name.toml")
    "${f[@]}" initialize "$fdst" >/dev/null
    cp "$img" "$rdst"
    cat "$img" "$fdst" "$rdst" >/dev/null
    : >"$lab/$name.times"
    for r in $(seq "$rounds"); do
        changed=$(scatter "$img")
        sleep 1.1
        t0=$(now)
        "${f[@]}" update "$fdst" >/dev/null
        t1=$(now)
        fb=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes'])" "$lab"/state-$name/*/last.json)
        t2=$(now)
        stats=$(rsync -a --inplace --no-whole-file --stats -e "$ssh_cmd" "$user@127.0.0.1:$img" "$rdst")
        t3=$(now)
        rb=$(echo "$stats" | awk -F': ' '/Total bytes sent|Total bytes received/ {gsub(/,/, "", $2); s += $2} END {print s}')
        cmp -s "$img" "$fdst" || { echo "ferry's replica differs from the image" >&2; exit 1; }
        cmp -s "$img" "$rdst" || { echo "rsync's copy differs from the image" >&2; exit 1; }
        fw=$(echo "$t1 - $t0" | bc -l); rw=$(echo "$t3 - $t2" | bc -l)
        printf '  round %d: %s bytes changed; ferry %.2f s, %s bytes; rsync %.2f s, %s bytes\n' "$r" "$changed" "$fw" "$fb" "$rw" "$rb"
        echo "$fw $fb $rw $rb $changed" >>"$lab/$name.times"
    done
    local fw fb rw rb ch
    fw=$(awk '{print $1}' "$lab/$name.times" | median); fb=$(awk '{print $2}' "$lab/$name.times" | median)
    rw=$(awk '{print $3}' "$lab/$name.times" | median); rb=$(awk '{print $4}' "$lab/$name.times" | median)
    ch=$(awk '{print $5}' "$lab/$name.times" | median)
    printf '%s: ferry %.2f s / %.0f bytes, rsync %.2f s / %.0f bytes, changed %.0f bytes\n' "$name" "$fw" "$fb" "$rw" "$rb" "$ch"
    printf '  ratio wall %.3f (target 0.3), ratio bytes %.3f (target 0.2), ferry bytes / changed %.3f\n' \
        "$(echo "$fw / $rw" | bc -l)" "$(echo "$fb / $rb" | bc -l)" "$(echo "$fb / $ch" | bc -l)"
}

echo "== ${mib} MiB image, ${percent} % of its 4 KiB blocks rewritten per round, $rounds rounds, over the sshd"
mkdir -p "$lab/images"
bench "$lab/images/vm.img" none plain

echo "== the same on btrfs with snapshot = \"reflink\""
truncate -s "$((mib * 3 + 512))M" "$lab/btrfs.img"
mkfs.btrfs -q -f "$lab/btrfs.img" >/dev/null
mkdir -p "$lab.btrfs"
mount -o loop "$lab/btrfs.img" "$lab.btrfs"
bench "$lab.btrfs/vm.img" reflink reflink
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg); medians of $rounds rounds; compare within one run)"
