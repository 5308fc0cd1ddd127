#!/usr/bin/env bash
# Benchmarks of ferry's ZFS replication on the demo lab (release build), each printed as a ratio
# against a baseline measured in the same run on the same data:
#
#  1. `ferry update` of a 200 MB increment over the loopback sshd, against the plain pipeline
#     `ssh host "zfs snapshot .. && zfs send -i .." | zfs recv ..` (OpenSSH, default cipher).
#  2. `ferry update` with nothing to send, against syncoid (Debian's sanoid package) doing the
#     same: new snapshot, incremental send, receive. syncoid 2.1.0 fails against a remote pool-v23
#     source (its snapshot-listing fallback prefixes the ssh command twice); this script runs a
#     copy with the call `getsnapsfallback($type,$rhost,...)` changed to pass the original host
#     argument (`$_[1]`), as DESIGN.md describes.
#
# zfs-fuse receives at about 140 MB/s here, the ceiling of every figure. Usage: scripts/bench.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
rounds=${1:-3}
mb=${BENCH_MB:-200}

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
LAB_POOL_SIZE=4G bash scripts/lab.sh up "$lab" >/dev/null
cfg=$lab/ferry.toml
src=$(awk -F'"' '/^source/ {print $2; exit}' "$cfg" | cut -d: -f2 | cut -d/ -f1)
dst=$(awk -F'"' '/^destination/ {print $2; exit}' "$cfg" | cut -d/ -f1)
port=$(cat "$lab/sshd.port")
# the lab serves a plain /bin/sh account: root's shell here runs `pyenv init` on every command
user=$(cat "$lab/ssh/user")
sshopts=(-o BatchMode=yes -o UserKnownHostsFile="$lab/ssh/known_hosts" -i "$lab/ssh/id_ed25519" -p "$port")
rsh() { ssh "${sshopts[@]}" $user@127.0.0.1 "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

cat >> "$cfg" <<EOF

[[pair]]
source = "store1:$src/bench"
destination = "$dst/replica/bench"

[[pair]]
source = "store1:$src/noop"
destination = "$dst/replica/noop"
EOF
for ds in bench raw noop synoop; do zfs create "$src/$ds"; done
head -c 8M /dev/urandom > "$lab/mnt/$src/bench/seed"
cp "$lab/mnt/$src/bench/seed" "$lab/mnt/$src/raw/seed"
"$ferry" -c "$cfg" initialize bench
"$ferry" -c "$cfg" initialize noop
zfs snapshot "$src/raw@r0"
rsh "zfs send $src/raw@r0" | zfs recv "$dst/replica/raw"

echo "1. ${mb} MB increment, $rounds rounds"
f_times=(); r_times=()
for i in $(seq 1 "$rounds"); do
    head -c "${mb}M" /dev/urandom > "$lab/data.$i"
    cp "$lab/data.$i" "$lab/mnt/$src/bench/data.$i"
    cp "$lab/data.$i" "$lab/mnt/$src/raw/data.$i"
    rm -f "$lab/data.$i"
    sync
    t0=$(now); "$ferry" -c "$cfg" update bench; t1=$(now)
    rsh "zfs snapshot $src/raw@r$i && zfs send -i $src/raw@r$((i-1)) $src/raw@r$i" | zfs recv "$dst/replica/raw"
    t2=$(now)
    f=$(echo "$t1 - $t0" | bc -l); r=$(echo "$t2 - $t1" | bc -l)
    printf '   round %d: ferry update %.2fs, ssh|zfs recv %.2fs\n' "$i" "$f" "$r"
    f_times+=("$f"); r_times+=("$r")
done
fm=$(printf '%s\n' "${f_times[@]}" | median); rm_=$(printf '%s\n' "${r_times[@]}" | median)
printf '   median: ferry %.2fs (%.0f MB/s), pipeline %.2fs (%.0f MB/s); ratio ferry/pipeline = %.2f\n' \
    "$fm" "$(echo "$mb / $fm" | bc -l)" "$rm_" "$(echo "$mb / $rm_" | bc -l)" "$(echo "$fm / $rm_" | bc -l)"

echo "2. update with nothing to send, $rounds rounds (syncoid with the getsnapsfallback host fix)"
syncoid=$lab/syncoid-fixed
sed 's/return getsnapsfallback(\$type,\$rhost,\$fs,\$isroot,%snaps);/return getsnapsfallback($type,$_[1],$fs,$isroot,%snaps);/' /usr/sbin/syncoid > "$syncoid"
grep -q 'getsnapsfallback($type,$_\[1\]' "$syncoid" || { echo "bench: could not patch syncoid" >&2; exit 1; }
chmod +x "$syncoid"
syn() {
    "$syncoid" --quiet --no-privilege-elevation --compress=none --sshport="$port" --sshkey="$lab/ssh/id_ed25519" \
        --sshoption="UserKnownHostsFile=$lab/ssh/known_hosts" "$user@127.0.0.1:$src/synoop" "$dst/replica/synoop"
}
syn   # first run: full copy
fn=(); sn=()
for i in $(seq 1 "$rounds"); do
    t0=$(now); "$ferry" -c "$cfg" update noop; t1=$(now); syn; t2=$(now)
    f=$(echo "$t1 - $t0" | bc -l); s=$(echo "$t2 - $t1" | bc -l)
    printf '   round %d: ferry update %.3fs, syncoid %.3fs\n' "$i" "$f" "$s"
    fn+=("$f"); sn+=("$s")
done
fm=$(printf '%s\n' "${fn[@]}" | median); sm=$(printf '%s\n' "${sn[@]}" | median)
printf '   median: ferry %.3fs, syncoid %.3fs; ratio ferry/syncoid = %.2f\n' "$fm" "$sm" "$(echo "$fm / $sm" | bc -l)"

bash scripts/lab.sh down "$lab" >/dev/null
