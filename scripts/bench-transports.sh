#!/usr/bin/env bash
# Benchmarks of issue 4 on the demo lab (release build), each printed as a ratio against a
# baseline measured in the same run on the same kind of data:
#
#  1. one increment (BENCH_MB, default 200 MB of random data) through ferry's ssh transport and
#     ferry's mbuffer transport, against the raw pipeline
#     `ssh host "zfs snapshot .. && zfs send -i .." | zfs recv ..` (OpenSSH, default cipher);
#  2. `ferry update --all` of 50 small pairs on one host, against the same 50 updates run one
#     after another (one `ferry update DEST` process each, as cron would), and against syncoid
#     doing the same 50 one after another. syncoid 2.1.0 fails against a remote pool-v23 source
#     (its snapshot-listing fallback prefixes the ssh command twice); this script runs a copy with
#     the call `getsnapsfallback($type,$rhost,...)` changed to pass the original host argument
#     (`$_[1]`), as DESIGN.md describes.
#
# zfs-fuse receives at about 140 MB/s here, the ceiling of every figure. Usage:
#   scripts/bench-transports.sh            (BENCH_MB=200 BENCH_PAIRS=50 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
mb=${BENCH_MB:-200}
npairs=${BENCH_PAIRS:-50}

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench-transports
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
LAB_POOL_SIZE=4G bash scripts/lab.sh up "$lab" >/dev/null
trap 'bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true' EXIT
cfg=$lab/ferry.toml
src=$(awk -F'"' '/^source/ {print $2; exit}' "$cfg" | cut -d: -f2 | cut -d/ -f1)
dst=$(awk -F'"' '/^destination/ {print $2; exit}' "$cfg" | cut -d/ -f1)
port=$(cat "$lab/sshd.port")
# the lab serves a plain /bin/sh account: root's shell here runs `pyenv init` on every command
user=$(cat "$lab/ssh/user")
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sshopts=(-o BatchMode=yes -o UserKnownHostsFile="$lab/ssh/known_hosts" -i "$lab/ssh/id_ed25519" -p "$port")
rsh() { ssh "${sshopts[@]}" $user@127.0.0.1 "$@"; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }

# only this benchmark's pairs (the lab's own are left uninitialized); limits for update --all:
# every pair touches store1 and local
awk '/^\[\[pair\]\]/{exit} {print}' "$cfg" > "$cfg.new" && mv "$cfg.new" "$cfg"
sed -i '1i max_jobs = 4\nmax_jobs_per_host = 4' "$cfg"
cat >> "$cfg" <<EOF

[[pair]]
source = "store1:$src/bssh"
destination = "$dst/replica/bssh"

[[pair]]
source = "store1:$src/bmbuf"
destination = "$dst/replica/bmbuf"
transport = "mbuffer"
port = $mport
mbuffer_address = "127.0.0.1"
EOF
zfs create -p "$dst/replica"
for ds in bssh bmbuf braw; do zfs create "$src/$ds"; head -c 4M /dev/urandom > "$lab/mnt/$src/$ds/seed"; done
"$ferry" -c "$cfg" initialize bssh
"$ferry" -c "$cfg" initialize bmbuf
zfs snapshot "$src/braw@r0"
rsh "zfs send $src/braw@r0" | zfs recv "$dst/replica/braw"

echo "1. ${mb} MB increment of random data"
head -c "${mb}M" /dev/urandom > "$lab/data"
for ds in bssh bmbuf braw; do cp "$lab/data" "$lab/mnt/$src/$ds/data"; done
rm -f "$lab/data"; sync
t0=$(now); rsh "zfs snapshot $src/braw@r1 && zfs send -i $src/braw@r0 $src/braw@r1" | zfs recv "$dst/replica/braw"; t1=$(now)
"$ferry" -c "$cfg" update bssh; t2=$(now)
"$ferry" -c "$cfg" update bmbuf; t3=$(now)
raw=$(secs "$t0" "$t1"); fssh=$(secs "$t1" "$t2"); fmb=$(secs "$t2" "$t3")
printf '   raw ssh|zfs recv %.2fs (%.0f MB/s)\n' "$raw" "$(echo "$mb / $raw" | bc -l)"
printf '   ferry ssh        %.2fs (%.0f MB/s)  ratio ferry-ssh/raw = %.2f\n' "$fssh" "$(echo "$mb / $fssh" | bc -l)" "$(echo "$fssh / $raw" | bc -l)"
printf '   ferry mbuffer    %.2fs (%.0f MB/s)  ratio ferry-mbuffer/raw = %.2f\n' "$fmb" "$(echo "$mb / $fmb" | bc -l)" "$(echo "$fmb / $raw" | bc -l)"

echo "2. $npairs small pairs on one host"
dests=()
for i in $(seq 1 "$npairs"); do
    zfs create "$src/p$i"
    head -c 64K /dev/urandom > "$lab/mnt/$src/p$i/seed"
    zfs create "$src/s$i"
    head -c 64K /dev/urandom > "$lab/mnt/$src/s$i/seed"
    printf '\n[[pair]]\nsource = "store1:%s/p%d"\ndestination = "%s/many/p%d"\n' "$src" "$i" "$dst" "$i" >> "$cfg"
    dests+=("$dst/many/p$i")
done
zfs create -p "$dst/many"
zfs create -p "$dst/syn"
for d in "${dests[@]}"; do "$ferry" -c "$cfg" initialize "$d"; done
syncoid=$lab/syncoid-fixed
sed 's/return getsnapsfallback(\$type,\$rhost,\$fs,\$isroot,%snaps);/return getsnapsfallback($type,$_[1],$fs,$isroot,%snaps);/' /usr/sbin/syncoid > "$syncoid"
grep -q 'getsnapsfallback($type,$_\[1\]' "$syncoid" || { echo "bench: could not patch syncoid" >&2; exit 1; }
chmod +x "$syncoid"
syn() {
    "$syncoid" --quiet --no-privilege-elevation --compress=none --sshport="$port" --sshkey="$lab/ssh/id_ed25519" \
        --sshoption="UserKnownHostsFile=$lab/ssh/known_hosts" "$user@127.0.0.1:$src/s$1" "$dst/syn/s$1"
}
for i in $(seq 1 "$npairs"); do syn "$i"; done   # first runs: full copies
change() { for i in $(seq 1 "$npairs"); do head -c 64K /dev/urandom > "$lab/mnt/$src/$1$i/c$2"; done; sync; }

change p 1
# the two large pairs are up to date; update --all covers them too (nothing to send)
t0=$(now); "$ferry" -c "$cfg" update --all; t1=$(now)
change p 2
t2=$(now); for d in "${dests[@]}" bssh bmbuf; do "$ferry" -c "$cfg" update "$d"; done; t3=$(now)
change s 1
t4=$(now); for i in $(seq 1 "$npairs"); do syn "$i"; done; t5=$(now)
all=$(secs "$t0" "$t1"); seq_=$(secs "$t2" "$t3"); sy=$(secs "$t4" "$t5")
printf '   ferry update --all (%d pairs)     %.2fs\n' "$((npairs + 2))" "$all"
printf '   ferry update one after another    %.2fs  ratio all/sequential = %.2f\n' "$seq_" "$(echo "$all / $seq_" | bc -l)"
printf '   syncoid one after another (%d)    %.2fs  ratio all/syncoid = %.2f (syncoid with the getsnapsfallback host fix)\n' "$npairs" "$sy" "$(echo "$all / $sy" | bc -l)"
