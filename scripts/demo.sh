#!/usr/bin/env bash
# The README's first command: installs what ferry needs, builds it, brings up the demo lab
# (scripts/lab.sh) and runs ferry's main job there: setup, initialize and update of every pair
# over a real sshd, then status. The lab stays up for you to try ferry yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$HOME/.cargo/bin:$PATH:/usr/local/sbin:/usr/sbin:/sbin

bash scripts/deps.sh
cargo build --release --quiet
ferry=$PWD/target/release/ferry
cfg=$(LAB_BLOCK=1 bash scripts/lab.sh up lab)
f() { echo "\$ ferry -c lab/ferry.toml $*"; "$ferry" -c "$cfg" "$@"; }

f check
pairs=$("$ferry" -c "$cfg" status --json | python3 -c 'import json,sys; [print(p["destination"].split(":",1)[1]) for p in json.load(sys.stdin)]')
for d in $pairs; do
    if [ "$("$ferry" -c "$cfg" status "$d" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')" = Uninitialized ]; then
        f setup "$d"
        f -v initialize "$d"
    fi
done
# change data on the "remote" source, then replicate the increments
src=$(awk -F'"' '/^source/ {print $2; exit}' "$cfg" | cut -d: -f2 | cut -d/ -f1)
head -c 24M /dev/urandom > "lab/mnt/$src/vm/disk-$(date +%s).img"
date >> "lab/mnt/$src/home/notes.txt"
# and rewrite 64 scattered 4 KiB blocks of the VM image the block pair replicates
python3 -c 'import os,random
f=open("lab/images/vm1.img","r+b")
for b in random.sample(range(os.path.getsize("lab/images/vm1.img")//4096),64): f.seek(b*4096); f.write(os.urandom(4096))'
for d in $pairs; do
    f -v update "$d"
done
f status --full
cat <<EOF

The lab is up: try
  $ferry -c $cfg                       (the console: u update, ? keys, q quit)
  $ferry -c $cfg status
  $ferry -c $cfg update vm &  $ferry -c $cfg runstatus vm
Remove it with: bash scripts/lab.sh down lab
EOF
