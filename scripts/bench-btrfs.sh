#!/usr/bin/env bash
# Benchmarks of ferry's btrfs replication (release build) on two loop-mounted btrfs filesystems,
# each figure a ratio against a baseline measured in the same run on the same data:
#
#  1. `ferry update` of an increment over the lab's loopback sshd (plain /bin/sh account), against
#     the plain pipeline `ssh host "btrfs subvolume snapshot -r .. && btrfs send -p .." | btrfs receive`
#     and against `btrbk run` (Debian's btrbk, which snapshots, sends incrementally and prunes, as
#     ferry does) pulling the same increment over the same sshd.
#  2. The same increment on one machine: `ferry update` (transport local) against `btrbk run` and
#     against a bare `btrfs subvolume snapshot -r && btrfs send -p | btrfs receive`.
#  3. An update with nothing to send, over the sshd and local: ferry against btrbk.
#
# btrbk reaches the sshd through an `ssh` wrapper on its PATH that adds the lab's known_hosts (the
# system's is not touched). Usage: scripts/bench-btrfs.sh [ROUNDS]   (BENCH_MB, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
rounds=${1:-3}
mb=${BENCH_MB:-200}

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench-btrfs
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
for m in a b; do umount "$lab.$m" 2>/dev/null || true; done
LAB_POOL_SIZE=256M bash scripts/lab.sh up "$lab" >/dev/null
port=$(cat "$lab/sshd.port")
user=$(cat "$lab/ssh/user")
sshopts=(-o BatchMode=yes -o UserKnownHostsFile="$lab/ssh/known_hosts" -i "$lab/ssh/id_ed25519" -p "$port")
rsh() { ssh "${sshopts[@]}" "$user@127.0.0.1" "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ratio() { echo "$1 / $2" | bc -l; }

size=$(( (mb * (rounds + 2) * 4 + 1024) ))M
A=$lab.a; B=$lab.b
for m in a b; do
    truncate -s "$size" "$lab/btrfs-$m.img"
    mkfs.btrfs -q -f "$lab/btrfs-$m.img" >/dev/null
    mkdir -p "$lab.$m"
    mount -o loop "$lab/btrfs-$m.img" "$lab.$m"
done
cleanup() {
    for m in a b; do umount "$lab.$m" 2>/dev/null || umount -l "$lab.$m" 2>/dev/null || true; done
    bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
}
trap cleanup EXIT


subs="ssh loc raw rawl bk bkssh noop noopssh bknoop bksshnoop"
for s in $subs; do btrfs subvolume create "$A/$s" >/dev/null; done
head -c 8M /dev/urandom > "$lab/seed"
for s in $subs; do cp "$lab/seed" "$A/$s/seed"; done
mkdir -p "$B/raw" "$B/rawl" "$A/.raw" "$A/.btrbk" "$lab/bin"
for t in btrbk btrbkssh btrbknoop btrbksshnoop; do mkdir -p "$B/$t"; done

cfg=$lab/btrfs.toml
cat > "$cfg" <<EOF
state_dir = "$lab/state-btrfs"

[hosts.store1]
address = "127.0.0.1"
port = $port
user = "$user"
key = "$lab/ssh/id_ed25519"
known_hosts = "$lab/ssh/known_hosts"

[defaults]
keep = 2

[[pair]]
kind = "btrfs"
source = "store1:$A/ssh"
destination = "$B/ferry/ssh"

[[pair]]
kind = "btrfs"
source = "$A/loc"
destination = "$B/ferry/loc"
transport = "local"

[[pair]]
kind = "btrfs"
source = "$A/noop"
destination = "$B/ferry/noop"
transport = "local"

[[pair]]
kind = "btrfs"
source = "store1:$A/noopssh"
destination = "$B/ferry/noopssh"
EOF
for d in ssh loc noop noopssh; do "$ferry" -c "$cfg" setup "$B/ferry/$d" >/dev/null; "$ferry" -c "$cfg" initialize "$B/ferry/$d"; done

btrbk_conf() {   # $1 = subvolume, $2 = target directory, $3 = volume (a path or an ssh:// URL)
    cat > "$lab/btrbk-$1.conf" <<EOF
timestamp_format        long-iso
snapshot_preserve_min   latest
snapshot_preserve       no
target_preserve_min     latest
target_preserve         no
lockfile                $lab/btrbk-$1.lock
ssh_identity            $lab/ssh/id_ed25519
ssh_user                $user
volume $3
  snapshot_dir .btrbk
  subvolume $1
    target send-receive $2
EOF
}
printf '#!/bin/sh\nexec /usr/bin/ssh -o BatchMode=yes -o UserKnownHostsFile=%s "$@"\n' "$lab/ssh/known_hosts" > "$lab/bin/ssh"
chmod +x "$lab/bin/ssh"
btrbk_conf bk "$B/btrbk" "$A"
btrbk_conf bknoop "$B/btrbknoop" "$A"
btrbk_conf bkssh "$B/btrbkssh" "ssh://127.0.0.1:$port$A"
btrbk_conf bksshnoop "$B/btrbksshnoop" "ssh://127.0.0.1:$port$A"
bk() { PATH="$lab/bin:$PATH" btrbk -q -c "$lab/btrbk-$1.conf" run >/dev/null; }
for c in bk bknoop bkssh bksshnoop; do bk $c; done

# the raw pipelines' base snapshots
btrfs subvolume snapshot -r "$A/raw" "$A/.raw/raw.0" >/dev/null
btrfs send -q "$A/.raw/raw.0" | btrfs receive -q "$B/raw"
btrfs subvolume snapshot -r "$A/rawl" "$A/.raw/rawl.0" >/dev/null
btrfs send -q "$A/.raw/rawl.0" | btrfs receive -q "$B/rawl"

secs() { echo "$2 - $1" | bc -l; }
m() { printf '%s\n' "$@" | median; }

echo "1. ${mb} MB increment over the loopback sshd, $rounds rounds"
echo "2. the same increment on one machine"
fs=(); rs=(); ks=(); fl=(); bl=(); rl=()
for i in $(seq 1 "$rounds"); do
    head -c "${mb}M" /dev/urandom > "$lab/data"
    for s in ssh raw bkssh loc bk rawl; do cp "$lab/data" "$A/$s/data.$i"; done
    rm -f "$lab/data"; sync; sleep 1
    t0=$(now); "$ferry" -c "$cfg" update "$B/ferry/ssh"
    t1=$(now); rsh "btrfs subvolume snapshot -r $A/raw $A/.raw/raw.$i >/dev/null && btrfs send -q -p $A/.raw/raw.$((i-1)) $A/.raw/raw.$i" \
        | btrfs receive -q "$B/raw"
    t2=$(now); bk bkssh
    t3=$(now); "$ferry" -c "$cfg" update "$B/ferry/loc"
    t4=$(now); bk bk
    t5=$(now); btrfs subvolume snapshot -r "$A/rawl" "$A/.raw/rawl.$i" >/dev/null
    btrfs send -q -p "$A/.raw/rawl.$((i-1))" "$A/.raw/rawl.$i" | btrfs receive -q "$B/rawl"
    t6=$(now)
    f=$(secs "$t0" "$t1"); r=$(secs "$t1" "$t2"); k=$(secs "$t2" "$t3")
    l=$(secs "$t3" "$t4"); b=$(secs "$t4" "$t5"); w=$(secs "$t5" "$t6")
    printf '   round %d: ssh: ferry %.2fs, ssh|btrfs receive %.2fs, btrbk %.2fs; local: ferry %.2fs, btrbk %.2fs, send|receive %.2fs\n' \
        "$i" "$f" "$r" "$k" "$l" "$b" "$w"
    fs+=("$f"); rs+=("$r"); ks+=("$k"); fl+=("$l"); bl+=("$b"); rl+=("$w")
done
F=$(m "${fs[@]}"); R=$(m "${rs[@]}"); S=$(m "${ks[@]}"); L=$(m "${fl[@]}"); K=$(m "${bl[@]}"); W=$(m "${rl[@]}")
printf '   1. median over ssh: ferry %.2fs (%.0f MB/s), pipeline %.2fs, btrbk %.2fs; ratio ferry/pipeline = %.2f (target 1.0), ferry/btrbk = %.2f (target 1.0)\n' \
    "$F" "$(ratio "$mb" "$F")" "$R" "$S" "$(ratio "$F" "$R")" "$(ratio "$F" "$S")"
printf '   2. median local: ferry %.2fs, btrbk %.2fs, send|receive %.2fs; ratio ferry/btrbk = %.2f, ferry/send|receive = %.2f\n' \
    "$L" "$K" "$W" "$(ratio "$L" "$K")" "$(ratio "$L" "$W")"

echo "3. update with nothing to send, $rounds rounds"
fn=(); bn=(); fsn=(); bsn=()
for i in $(seq 1 "$rounds"); do
    sleep 1
    t0=$(now); "$ferry" -c "$cfg" update "$B/ferry/noopssh"
    t1=$(now); bk bksshnoop
    t2=$(now); "$ferry" -c "$cfg" update "$B/ferry/noop"
    t3=$(now); bk bknoop
    t4=$(now)
    a1=$(secs "$t0" "$t1"); a2=$(secs "$t1" "$t2"); a3=$(secs "$t2" "$t3"); a4=$(secs "$t3" "$t4")
    printf '   round %d: over ssh: ferry %.3fs, btrbk %.3fs; local: ferry %.3fs, btrbk %.3fs\n' "$i" "$a1" "$a2" "$a3" "$a4"
    fsn+=("$a1"); bsn+=("$a2"); fn+=("$a3"); bn+=("$a4")
done
FS=$(m "${fsn[@]}"); KS=$(m "${bsn[@]}"); F=$(m "${fn[@]}"); K=$(m "${bn[@]}")
printf '   median over ssh: ferry %.3fs, btrbk %.3fs; ratio ferry/btrbk = %.2f (target 0.5)\n' "$FS" "$KS" "$(ratio "$FS" "$KS")"
printf '   median local: ferry %.3fs, btrbk %.3fs; ratio ferry/btrbk = %.2f\n' "$F" "$K" "$(ratio "$F" "$K")"
# what the destinations hold after the runs: ferry keeps 2 (keep = 2), btrbk the latest
printf '   left on the destinations: ferry %s snapshots, btrbk %s\n' \
    "$(ls -d "$B"/ferry/loc/ferry.* | wc -l)" "$(ls -d "$B"/btrbk/bk.* | wc -l)"
