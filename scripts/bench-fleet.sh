#!/usr/bin/env bash
# Fleet-scale benchmarks (issue 7) on a lab served by a plain /bin/sh account over the loopback
# sshd (release build), each printed against its target or a baseline run in the same script:
#
#  1. `ferry status` of FLEET_STATUS_PAIRS pairs (default 5,000) on FLEET_STATUS_HOSTS host
#     entries (default 50, all this lab's sshd under different names): median of 3 runs against
#     the 1 s target, and the number of remote commands it ran (sshd's "Starting session" lines),
#     against the target of one per host;
#  2. `ferry update --all` of FLEET_PAIRS no-op pairs (default 1,000) on FLEET_HOSTS host entries
#     (default 20), against the same pairs updated one after another (one `ferry update DEST` each,
#     as a cron loop would), and per pair against syncoid (with the getsnapsfallback host fix, see
#     bench.sh) on FLEET_SYNCOID of them (default 100), one after another.
#
# Usage: scripts/bench-fleet.sh   (takes about 15 minutes at the default sizes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
status_pairs=${FLEET_STATUS_PAIRS:-5000}
status_hosts=${FLEET_STATUS_HOSTS:-50}
npairs=${FLEET_PAIRS:-1000}
nhosts=${FLEET_HOSTS:-20}
nsyn=${FLEET_SYNCOID:-100}

bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry
lab=/var/tmp/ferry-bench-fleet
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
LAB_POOL_SIZE=4G bash scripts/lab.sh up "$lab" >/dev/null
[ -n "${FLEET_KEEP:-}" ] || trap 'bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true' EXIT
base=$lab/ferry.toml
src=$(awk -F'"' '/^source/ {print $2; exit}' "$base" | cut -d: -f2 | cut -d/ -f1)
dst=$(awk -F'"' '/^destination/ {print $2; exit}' "$base" | cut -d/ -f1)
port=$(cat "$lab/sshd.port")
user=$(cat "$lab/ssh/user")
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sessions() { grep -c "Starting session: command" "$lab/sshd.log" || true; }

# a config of N host entries, all this lab's sshd
header() {
    local n=$1
    # top-level keys before the lab's first table
    echo "max_jobs = 8"
    echo "max_jobs_per_host = 2"
    awk '/^\[hosts\./{exit} {print}' "$base"
    for h in $(seq 1 "$n"); do
        printf '\n[hosts.store%d]\naddress = "127.0.0.1"\nport = %d\nuser = "%s"\nkey = "%s"\nknown_hosts = "%s"\n' \
            "$h" "$port" "$user" "$lab/ssh/id_ed25519" "$lab/ssh/known_hosts"
    done
}

per_host=$(( (status_pairs + status_hosts - 1) / status_hosts ))
per_up=$(( (npairs + nhosts - 1) / nhosts ))
need=$(( per_host > per_up ? per_host : per_up ))
echo "creating $need source datasets"
for k in $(seq 0 $((need - 1))); do
    zfs list -H -o name "$src/f$k" >/dev/null 2>&1 || zfs create "$src/f$k"
done

echo "1. status of $status_pairs pairs on $status_hosts host entries"
cfg=$lab/status.toml
{
    header "$status_hosts"
    n=0
    for h in $(seq 1 "$status_hosts"); do
        for k in $(seq 0 $((per_host - 1))); do
            [ "$n" -lt "$status_pairs" ] || break
            printf '\n[[pair]]\nsource = "store%d:%s/f%d"\ndestination = "%s/st/h%d/f%d"\n' "$h" "$src" "$k" "$dst" "$h" "$k"
            n=$((n + 1))
        done
    done
} > "$cfg"
# status exits 1 when a pair is Inconsistent or Unknown: the figures still count, the states are shown
"$ferry" -c "$cfg" status > /dev/null || true   # warm caches
times=()
for r in 1 2 3; do
    before=$(sessions)
    t0=$(now); "$ferry" -c "$cfg" status > "$lab/status.out" || true; t1=$(now)
    execs=$(( $(sessions) - before ))
    times+=("$(secs "$t0" "$t1")")
    printf '   run %d: %.2fs, %d remote commands\n' "$r" "${times[-1]}" "$execs"
done
rows=$(($(wc -l < "$lab/status.out") - 1))
printf '   states: %s\n' "$(awk 'NR>1 {print $3}' "$lab/status.out" | sort | uniq -c | xargs)"
sm=$(printf '%s\n' "${times[@]}" | median)
printf '   median %.2fs for %d rows (target <= 1 s: ratio %.2f); %d remote commands for %d hosts (target 1 per host)\n' \
    "$sm" "$rows" "$(echo "$sm / 1" | bc -l)" "$execs" "$status_hosts"

echo "2. update --all of $npairs no-op pairs on $nhosts host entries"
cfg=$lab/update.toml
dests=()
{
    header "$nhosts"
    n=0
    for h in $(seq 1 "$nhosts"); do
        for k in $(seq 0 $((per_up - 1))); do
            [ "$n" -lt "$npairs" ] || break
            printf '\n[[pair]]\nsource = "store%d:%s/f%d"\ndestination = "%s/up/h%d/f%d"\n' "$h" "$src" "$k" "$dst" "$h" "$k"
            n=$((n + 1))
        done
    done
} > "$cfg"
for h in $(seq 1 "$nhosts"); do zfs create -p "$dst/up/h$h"; done
mapfile -t dests < <(awk -F'"' '/^destination/ {print $2}' "$cfg")
echo "   initializing ${#dests[@]} pairs (4 at a time)"
printf '%s\n' "${dests[@]}" | xargs -P 4 -I{} "$ferry" -c "$cfg" initialize {}
"$ferry" -c "$cfg" update --all   # every pair once, so both runs below start alike
t0=$(now); "$ferry" -c "$cfg" update --all; t1=$(now)
t2=$(now); for d in "${dests[@]}"; do "$ferry" -c "$cfg" update "$d"; done; t3=$(now)
all=$(secs "$t0" "$t1"); seq_=$(secs "$t2" "$t3")
printf '   ferry update --all              %.2fs (%.1f ms per pair)\n' "$all" "$(echo "$all * 1000 / ${#dests[@]}" | bc -l)"
printf '   ferry update one after another  %.2fs  ratio all/sequential = %.2f\n' "$seq_" "$(echo "$all / $seq_" | bc -l)"

syncoid=$lab/syncoid-fixed
sed 's/return getsnapsfallback(\$type,\$rhost,\$fs,\$isroot,%snaps);/return getsnapsfallback($type,$_[1],$fs,$isroot,%snaps);/' /usr/sbin/syncoid > "$syncoid"
grep -q 'getsnapsfallback($type,$_\[1\]' "$syncoid" || { echo "bench: could not patch syncoid" >&2; exit 1; }
chmod +x "$syncoid"
zfs create -p "$dst/syn"
syn() {
    "$syncoid" --quiet --no-privilege-elevation --compress=none --sshport="$port" --sshkey="$lab/ssh/id_ed25519" \
        --sshoption="UserKnownHostsFile=$lab/ssh/known_hosts" "$user@127.0.0.1:$src/f$1" "$dst/syn/f$1" 2>>"$lab/syncoid.err"
}
nsyn=$(( nsyn < need ? nsyn : need ))
for k in $(seq 0 $((nsyn - 1))); do syn "$k"; done   # first runs: full copies
t4=$(now); for k in $(seq 0 $((nsyn - 1))); do syn "$k"; done; t5=$(now)
sy=$(secs "$t4" "$t5")
per_all=$(echo "$all / ${#dests[@]}" | bc -l); per_syn=$(echo "$sy / $nsyn" | bc -l)
printf '   syncoid one after another (%d)   %.2fs (%.1f ms per pair)  ratio per pair all/syncoid = %.2f\n' \
    "$nsyn" "$sy" "$(echo "$per_syn * 1000" | bc -l)" "$(echo "$per_all / $per_syn" | bc -l)"
