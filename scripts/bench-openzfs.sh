#!/usr/bin/env bash
# Benchmarks of ferry on real OpenZFS 2.3 (the qemu lab, scripts/openzfs-lab.sh), release build,
# each a ratio against a baseline measured in the same run over the same SSH path: both pools are
# in the guest, reached from the host as two hosts (loopback port, the guest's root with /bin/sh),
# so every stream goes guest -> host -> guest for ferry and for the baselines alike.
#
#  1. `ferry update` with nothing new, against syncoid (Debian's sanoid, unpatched: it works on
#     OpenZFS) doing the same between the same two pools: snapshot, incremental send, receive.
#     Target: ratio <= 0.15.
#  2. `ferry update` of a BENCH_MIB (1024) MiB increment, against the raw pipeline
#     `ssh guest "zfs snapshot .. && zfs send -i .." | ssh guest "zfs receive .."`. Target <= 1.0.
#  3. Resume: `ferry initialize` of a BENCH_RESUME_MIB (64) MiB dataset at bwlimit 8M, SIGKILLed
#     once half has arrived; the next run's resent share of the stream (target <= 55 %).
#
# The guest runs under software emulation here (no hardware KVM): its disks and zfs are slow, the
# same for ferry and the baselines. Usage: [BENCH_STEPS=123] scripts/bench-openzfs.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
rounds=${1:-3}
mib=${BENCH_MIB:-1024}
resume_mib=${BENCH_RESUME_MIB:-64}
# which of the three to run (BENCH_STEPS=3: the resume figure alone)
steps=${BENCH_STEPS:-123}

bash scripts/openzfs-lab.sh build >/dev/null
command -v syncoid >/dev/null || apt-get install -y -q sanoid >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench-openzfs
mkdir -p "$lab"
bash scripts/openzfs-lab.sh down "$lab" >/dev/null 2>&1 || true
# each round writes the increment twice on the source pool (ferry's dataset and the pipeline's),
# and the snapshots keep it: the pools and the site disks holding their files are sized for that
size=$(( (2 * mib * rounds + 2 * resume_mib) / 1024 + 2 ))
OZFS_SITE_SIZE=$(( size + 2 ))G FERRY_BIN=$ferry \
    bash scripts/openzfs-lab.sh up "$lab" >/dev/null
trap 'bash scripts/openzfs-lab.sh down "$lab" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
. "$lab/lab.env"
sshopts=(-o BatchMode=yes -o IdentitiesOnly=yes -o UserKnownHostsFile="$lab/known_hosts" -i "$KEY" -p "$PORT")
g() { ssh "${sshopts[@]}" root@127.0.0.1 "$@"; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

g "truncate -s ${size}G /site1/bs.img /site2/bd.img && \
   zpool create -f -o ashift=12 -O atime=off -m /mnt/bs bs /site1/bs.img && \
   zpool create -f -o ashift=12 -O atime=off -m /mnt/bd bd /site2/bd.img && \
   for d in inc raw noop synoop resume; do zfs create bs/\$d; done && zfs create bd/rep"

cfg=$lab/ferry.toml
{
    echo "state_dir = \"$lab/state\""
    for h in source destination; do
        printf '\n[hosts.%s]\naddress = "127.0.0.1"\nport = %s\nuser = "root"\nkey = "%s"\nknown_hosts = "%s"\n' \
            "$h" "$PORT" "$KEY" "$lab/known_hosts"
    done
    for d in inc noop; do
        printf '\n[[pair]]\nsource = "source:bs/%s"\ndestination = "destination:bd/rep/%s"\n' "$d" "$d"
    done
    printf '\n[[pair]]\nsource = "source:bs/resume"\ndestination = "destination:bd/rep/resume"\nbwlimit = "8M"\n'
} > "$cfg"
rm -rf "$lab/state"

g "dd if=/dev/urandom of=/mnt/bs/inc/seed bs=1M count=8 status=none && cp /mnt/bs/inc/seed /mnt/bs/raw/seed && \
   dd if=/dev/urandom of=/mnt/bs/noop/seed bs=1M count=8 status=none && cp /mnt/bs/noop/seed /mnt/bs/synoop/seed && sync"
"$ferry" -c "$cfg" initialize inc
"$ferry" -c "$cfg" initialize noop
g "zfs snapshot bs/raw@r0 && zfs send bs/raw@r0" | g "zfs receive bd/rep/raw"

if [[ $steps == *1* ]]; then
echo "1. update with nothing new, $rounds rounds (syncoid $(syncoid --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1))"
syn() {
    syncoid --quiet --no-privilege-elevation --compress=none --sshport="$PORT" --sshkey="$KEY" \
        --sshoption="UserKnownHostsFile=$lab/known_hosts" --sshoption=IdentitiesOnly=yes \
        root@127.0.0.1:bs/synoop root@127.0.0.1:bd/rep/synoop
}
syn # first run: full copy
fn=(); sn=()
for i in $(seq 1 "$rounds"); do
    sleep 1
    t0=$(now); "$ferry" -c "$cfg" update noop; t1=$(now); syn; t2=$(now)
    f=$(echo "$t1 - $t0" | bc -l); s=$(echo "$t2 - $t1" | bc -l)
    printf '   round %d: ferry update %.3fs, syncoid %.3fs\n' "$i" "$f" "$s"
    fn+=("$f"); sn+=("$s")
done
fm=$(printf '%s\n' "${fn[@]}" | median); sm=$(printf '%s\n' "${sn[@]}" | median)
printf '   median: ferry %.3fs, syncoid %.3fs; ratio ferry/syncoid = %.2f (target 0.15)\n' "$fm" "$sm" "$(echo "$fm / $sm" | bc -l)"
fi

if [[ $steps == *2* ]]; then
echo "2. ${mib} MiB increment, $rounds rounds"
f_times=(); r_times=()
for i in $(seq 1 "$rounds"); do
    g "dd if=/dev/urandom of=/mnt/bs/inc/data.$i bs=1M count=$mib status=none && cp /mnt/bs/inc/data.$i /mnt/bs/raw/data.$i && sync"
    t0=$(now); "$ferry" -c "$cfg" update inc; t1=$(now)
    g "zfs snapshot bs/raw@r$i && zfs send -i bs/raw@r$((i-1)) bs/raw@r$i" | g "zfs receive bd/rep/raw"
    t2=$(now)
    f=$(echo "$t1 - $t0" | bc -l); r=$(echo "$t2 - $t1" | bc -l)
    printf '   round %d: ferry update %.2fs, ssh|ssh zfs receive %.2fs\n' "$i" "$f" "$r"
    f_times+=("$f"); r_times+=("$r")
    g "rm -f /mnt/bs/inc/data.$i /mnt/bs/raw/data.$i"
done
fm=$(printf '%s\n' "${f_times[@]}" | median); rm_=$(printf '%s\n' "${r_times[@]}" | median)
printf '   median: ferry %.2fs (%.0f MiB/s), pipeline %.2fs (%.0f MiB/s); ratio ferry/pipeline = %.2f (target 1.0)\n' \
    "$fm" "$(echo "$mib / $fm" | bc -l)" "$rm_" "$(echo "$mib / $rm_" | bc -l)" "$(echo "$fm / $rm_" | bc -l)"
fi

if [[ $steps == *3* ]]; then
echo "3. resume after a cut at half (${resume_mib} MiB full send, bwlimit 8M)"
g "dd if=/dev/urandom of=/mnt/bs/resume/a bs=1M count=$resume_mib status=none && sync"
"$ferry" -c "$cfg" setup resume >/dev/null
dir=$(dirname "$("$ferry" -c "$cfg" logfile resume)")
"$ferry" -c "$cfg" initialize resume & pid=$!
expected=0
while kill -0 "$pid" 2>/dev/null; do
    if [ -f "$dir/progress.json" ]; then
        read -r bytes expected < <(python3 -c '
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception:
    d = {}
t = d.get("phase") == "transfer"
print(d.get("bytes", 0) if t else 0, (d.get("expected") or 0) if t else 0)' "$dir/progress.json")
        if [ "$expected" -gt 0 ] && [ $((bytes * 2)) -ge "$expected" ]; then kill -9 "$pid"; break; fi
    fi
    sleep 0.05
done
wait "$pid" 2>/dev/null || true
[ "$expected" -gt 0 ] || { echo "   the initialize ended before half" >&2; exit 1; }
token=$(g "zfs get -H -o value receive_resume_token bd/rep/resume")
[ "$token" != - ] || { echo "   no resume token after the cut" >&2; exit 1; }
arrived=$(( $(g "zfs send -nvt $token 2>&1" | awk '$1=="bytes" {print $3}') ))
"$ferry" -c "$cfg" unlock resume >/dev/null
sleep 1
"$ferry" -c "$cfg" initialize resume
rest=$(grep -o 'resumed: [0-9]*' "$dir/log" | tail -1 | awk '{print $2}')
printf '   cut with %d of %d bytes arrived (%.1f %%); the resume sent %d (%.1f %% of the stream; target 55 %%)\n' \
    "$arrived" "$expected" "$(echo "100 * $arrived / $expected" | bc -l)" "$rest" "$(echo "100 * $rest / $expected" | bc -l)"
fi
