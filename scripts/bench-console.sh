#!/usr/bin/env bash
# The console's own cost on the demo lab (release build): CPU use while idle and while one
# transfer runs, and resident memory. The console runs in a private tmux server at 140x40; its
# CPU time is read from /proc/PID/stat (utime + stime) over a window of WINDOW seconds (20), its
# memory from /proc/PID/status (VmRSS, VmHWM). The transfer is an update of vm (320 MiB at a
# bwlimit of 8 MiB/s, ~40 s) started from the keyboard; its detached job is a separate process
# and not counted. Usage: scripts/bench-console.sh      (needs root: zfs-fuse pools)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin
window=${WINDOW:-20}
lab=/var/tmp/ferry-bench-console
sock=ferry-bench-console

command -v tmux >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; }
bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry

tm() { tmux -L "$sock" "$@"; }
cleanup() {
    tm kill-server 2>/dev/null || true
    bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
cfg=$(bash scripts/lab.sh up "$lab" 2>/dev/null)
src=$(awk -F'"' '/^source/ {print $2; exit}' "$cfg" | cut -d: -f2 | cut -d/ -f1)
for d in home vm db; do
    "$ferry" -c "$cfg" setup "$d" >/dev/null
    "$ferry" -c "$cfg" initialize "$d"
done
head -c 320M /dev/urandom > "$lab/mnt/$src/vm/disk-2.img"
sync
awk '{print} /^\[\[pair\]\]/ {print "bwlimit = \"8M\""}' "$cfg" > "$cfg.new" && mv "$cfg.new" "$cfg"

conf=$lab/tmux.conf
printf 'set -g status off\nset -g escape-time 10\n' > "$conf"
tm -f "$conf" new-session -d -s bench -x 140 -y 40 "exec $ferry -c $cfg console"
screen_text() { tm capture-pane -p -t bench; }
wait_for() {
    local re=$1 i
    for i in $(seq 1 300); do
        screen_text | grep -Eq -- "$re" && return 0
        sleep 0.2
    done
    echo "bench-console: timed out waiting for /$re/" >&2; screen_text >&2; exit 1
}
wait_gone() {
    local re=$1 i
    for i in $(seq 1 300); do
        screen_text | grep -Eq -- "$re" || return 0
        sleep 0.2
    done
    echo "bench-console: /$re/ still on screen" >&2; exit 1
}

# the console: the pane's process, or its ferry child if a shell stands in between
pid=$(tm display -p -t bench '#{pane_pid}')
if [ "$(cat /proc/"$pid"/comm)" != ferry ]; then
    pid=$(pgrep -P "$pid" -x ferry | head -1)
fi
[ "$(cat /proc/"$pid"/comm)" = ferry ] || { echo "bench-console: no ferry process in the pane" >&2; exit 1; }
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# cpu PID SECONDS: percent of one core used over the window
cpu() {
    local a b t0 t1
    a=$(ticks "$1"); t0=$(date +%s.%N)
    sleep "$2"
    b=$(ticks "$1"); t1=$(date +%s.%N)
    awk -v d=$((b - a)) -v hz="$hz" -v s0="$t0" -v s1="$t1" \
        'BEGIN {printf "%.2f%% of one core (%.2f s CPU in %.1f s)", 100 * d / hz / (s1 - s0), d / hz, s1 - s0}'
}

wait_for '3 pairs: 3 synchronized'
wait_gone 'reading hosts'
sleep 3 # first refresh settled
echo "ferry console (pid $pid), 3 pairs on the demo lab, 140x40 tmux pane, ${window} s windows:"
echo "  RSS after the first refresh: $(kb "$pid" VmRSS) KB"
echo "  idle:               $(cpu "$pid" "$window"), RSS $(kb "$pid" VmRSS) KB"

tm send-keys -t bench End
sleep 0.5
tm send-keys -t bench u
wait_for '/s now'
sleep 3 # past the first second's partial rate
rate_now() { screen_text | grep -Eo '[0-9.]+ [KMG]?i?B/s now' | head -1; }
r0=$(rate_now)
used=$(cpu "$pid" "$window")
r1=$(rate_now)
echo "  one transfer:       $used, RSS $(kb "$pid" VmRSS) KB (pane showed ${r0} at the start, ${r1:-no job} at the end)"
[ -n "$r1" ] || echo "  (warning: the transfer ended inside the window)"
echo "  peak RSS (VmHWM):   $(kb "$pid" VmHWM) KB"
timeout 120 "$ferry" -c "$cfg" runstatus vm >/dev/null 2>&1 || true
tm send-keys -t bench q
sleep 0.5
