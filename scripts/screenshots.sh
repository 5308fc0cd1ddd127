#!/usr/bin/env bash
# Regenerates the console screenshots in screenshots/ from the real console (release build)
# running against the demo lab (scripts/lab.sh) with a transfer in flight:
#
#   console-transfer.png  pairs view, an update of vm running (rate pane with its history)
#   console-detail.png    the selected pair's detail (enter)
#   console-hosts.png     hosts view (tab)
#   console-clusters.png  clusters view (tab tab): the lab's two-site object cluster, worked
#   console-light.png     the light theme (t), transfer still running
#   console-help.png      the key help (?)
#
# The console runs in a private tmux server at 140x40; keys are sent with `tmux send-keys`,
# each screen is captured with its colours (`tmux capture-pane -e -p`) and rendered to PNG by
# scripts/render_screen.py (pyte + Pillow, DejaVu Sans Mono). Installs tmux, python3-pyte,
# python3-pil and fonts-dejavu-core with apt if missing. Needs root (zfs-fuse pools).
# Usage: scripts/screenshots.sh        (KEEP_LAB=1 leaves the lab and tmux session up)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

lab=/var/tmp/ferry-shots
out=$PWD/screenshots
sock=ferry-shots
cols=140
rows=40
py=/usr/bin/python3
[ -x "$py" ] || py=python3

# --- what this script needs ------------------------------------------------------------------
need=()
command -v tmux >/dev/null || need+=(tmux)
"$py" -c 'import pyte' 2>/dev/null || need+=(python3-pyte)
"$py" -c 'import PIL' 2>/dev/null || need+=(python3-pil)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
    echo "screenshots: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
bash scripts/deps.sh >/dev/null
cargo build --release --quiet
ferry=$PWD/target/release/ferry

tm() { tmux -L "$sock" "$@"; }
cleanup() {
    [ -n "${crun:-}" ] && kill "$crun" 2>/dev/null || true
    if [ -z "${KEEP_LAB:-}" ]; then
        tm kill-server 2>/dev/null || true
        bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
    fi
    rm -f "${tmp:-/nonexistent}"/*.ans 2>/dev/null || true
}
trap cleanup EXIT

# --- the lab: three pairs initialized, then a bandwidth-limited increment on vm ---------------
tm kill-server 2>/dev/null || true
bash scripts/lab.sh down "$lab" >/dev/null 2>&1 || true
cfg=$(LAB_OBJECT=1 bash scripts/lab.sh up "$lab")
tmp=$lab/captures
mkdir -p "$tmp" "$out"
src=$(awk -F'"' '/^source/ {print $2; exit}' "$cfg" | cut -d: -f2 | cut -d/ -f1)
for d in home vm db; do
    "$ferry" -c "$cfg" setup "$d" >/dev/null
    "$ferry" -c "$cfg" initialize "$d"
done
# the object pair, and the object cluster worked in the background with an object on each site
# (s3s-fs serves the files under its root as objects)
for site in a b; do date > "$lab/s3/$site/shared/from-$site.txt"; done
mkdir -p "$lab/s3/a/photos/2026"
for i in 1 2 3; do head -c 64K /dev/urandom > "$lab/s3/a/photos/2026/img$i.jpg"; done
"$ferry" -c "$cfg" initialize photos-dr/2026
"$ferry" -c "$cfg" cluster run shared >/dev/null 2>&1 &
crun=$!
# a few changes on every source, replicated, so lags and checkpoints are fresh
date >> "$lab/mnt/$src/home/notes.txt"
head -c 2M /dev/urandom > "$lab/mnt/$src/db/wal.dat"
"$ferry" -c "$cfg" update home
"$ferry" -c "$cfg" update db
# the increment the screenshots watch: 240 MiB at 8 MiB/s, about 30 s, time for every shot
head -c 240M /dev/urandom > "$lab/mnt/$src/vm/disk-2.img"
sync
awk '{print} /^\[\[pair\]\]/ {print "bwlimit = \"8M\""}' "$cfg" > "$cfg.new" && mv "$cfg.new" "$cfg"
"$ferry" -c "$cfg" check >/dev/null

# --- the console in tmux ------------------------------------------------------------------
conf=$tmp/tmux.conf
cat > "$conf" <<EOF
set -g status off
set -g default-terminal "tmux-256color"
set -g escape-time 10
EOF
[ -f /usr/share/terminfo/t/tmux-256color ] || [ -f /lib/terminfo/t/tmux-256color ] \
    || sed -i 's/tmux-256color/screen-256color/' "$conf"
tm -f "$conf" new-session -d -s shots -x "$cols" -y "$rows" "$ferry -c $cfg console"
size=$(tm display -p -t shots '#{pane_width}x#{pane_height}')
[ "$size" = "${cols}x${rows}" ] || { echo "screenshots: pane is $size, not ${cols}x${rows}" >&2; exit 1; }

screen_text() { tm capture-pane -p -t shots; }
# wait_for REGEX [SECONDS]: until the screen shows REGEX
wait_for() {
    local re=$1 limit=${2:-30} i
    for i in $(seq 1 $((limit * 5))); do
        screen_text | grep -Eq -- "$re" && return 0
        sleep 0.2
    done
    echo "screenshots: timed out waiting for /$re/ on screen:" >&2
    screen_text >&2
    exit 1
}
wait_gone() {
    local re=$1 limit=${2:-30} i
    for i in $(seq 1 $((limit * 5))); do
        screen_text | grep -Eq -- "$re" || return 0
        sleep 0.2
    done
    echo "screenshots: /$re/ still on screen after ${limit}s" >&2
    exit 1
}
keys() { tm send-keys -t shots "$@"; }
shot() {
    local name=$1 shift_light=${2:-}
    tm capture-pane -e -p -t shots > "$tmp/$name.ans"
    "$py" scripts/render_screen.py "$tmp/$name.ans" "$out/$name.png" --cols "$cols" --rows "$rows" $shift_light
    echo "screenshots: $out/$name.png ($(du -k "$out/$name.png" | cut -f1) KB)"
}

# every pair's status read from the hosts
wait_for '4 pairs: 4 synchronized'
wait_gone 'reading hosts'
# select vm (the last zfs pair by destination; the object pair's s3b: sorts after it) and
# update it from the keyboard
keys End Up
sleep 0.5
keys u
wait_for '/s now'
sleep 8 # some rate history for the sparkline
shot console-transfer

keys Enter
wait_for 'Detail '
sleep 1.5 # the log tail and snapshots arrive from the background
shot console-detail
keys Escape
sleep 0.3

keys Tab
wait_for 'reachable'
wait_for ' [0-9]+ ms '
wait_for 'cpu '
sleep 1
shot console-hosts
keys Tab
wait_for 'worked by cluster run'
shot console-clusters
keys Tab # back to pairs
sleep 0.3

keys t # the light theme
sleep 0.7
shot console-light --light
keys t t # high-contrast, back to dark
sleep 6.5 # until the status bar shows the keys again (the "theme dark" note goes)

keys '?'
wait_for 'any key closes this help'
shot console-help
keys Escape

# let the update finish before the lab goes
timeout 180 "$ferry" -c "$cfg" runstatus vm >/dev/null 2>&1 || true
keys q
sleep 0.5
