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
cfg=$(LAB_BLOCK=1 LAB_OBJECT=1 bash scripts/lab.sh up lab)
f() { echo "\$ ferry -c lab/ferry.toml $*"; "$ferry" -c "$cfg" "$@"; }

# rclone on the lab's two S3 sites: photos for the object pair
unset AWS_CA_BUNDLE
export RCLONE_CONFIG=/dev/null RCLONE_DISABLE=ListR
for site in a b; do
    up=${site^^}
    export RCLONE_CONFIG_S${up}_TYPE=s3 RCLONE_CONFIG_S${up}_PROVIDER=Other RCLONE_CONFIG_S${up}_FORCE_PATH_STYLE=true
    export RCLONE_CONFIG_S${up}_ENDPOINT=http://127.0.0.1:$(cat lab/s3/$site.port)
    export RCLONE_CONFIG_S${up}_ACCESS_KEY_ID=LAB$up RCLONE_CONFIG_S${up}_SECRET_ACCESS_KEY=lab-$site-secret
done
mkdir -p lab/photos
for i in $(seq -w 1 40); do head -c $(( (RANDOM % 60 + 4) * 1024 )) /dev/urandom > "lab/photos/img$i.jpg"; done
rclone copy --header-upload "Content-Type: image/jpeg" lab/photos SA:photos/2026/

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
rclone copyto --ignore-times lab/photos/img01.jpg SA:photos/2026/new-$(date +%s).jpg
for d in $pairs; do
    f -v update "$d"
done
f status --full
f objects photos-dr/2026 | tail -3

# the object cluster: both sites write, cluster run keeps them one namespace
date > lab/site-a.txt; rclone copyto lab/site-a.txt SA:shared/from-a.txt
date > lab/site-b.txt; rclone copyto lab/site-b.txt SB:shared/from-b.txt
echo "\$ ferry -c lab/ferry.toml cluster run shared   (twice, in the background: one works, one stands by)"
"$ferry" -c "$cfg" cluster run shared & c1=$!
sleep 0.5
"$ferry" -c "$cfg" cluster run shared & c2=$!
sleep 5
f cluster status shared
# the working instance dies: the other takes over within the lease (3 s in the lab)
worker=$("$ferry" -c "$cfg" --json cluster status shared | python3 -c 'import json,re,sys; print(re.search(r"pid (\d+)", json.load(sys.stdin)[0]["worker"] or "").group(1))')
echo "\$ kill -9 $worker   (the working instance)"
kill -9 "$worker"; wait "$worker" 2>/dev/null || true
date > lab/site-a2.txt; rclone copyto lab/site-a2.txt SA:shared/after-failover.txt
sleep 7
f cluster status shared
f cluster diverge shared
grep -E "working the cluster|standing by" "$(dirname "$cfg")/state/clusters/shared/log" | tail -4
kill "$c1" "$c2" 2>/dev/null || true; wait "$c1" "$c2" 2>/dev/null || true
cat <<EOF

The lab is up: try
  $ferry -c $cfg                       (the console: u update, ? keys, q quit)
  $ferry -c $cfg status
  $ferry -c $cfg update vm &  $ferry -c $cfg runstatus vm
  $ferry -c $cfg cluster run shared     (start two: one works, one stands by; ctrl-c stops it)
Remove it with: bash scripts/lab.sh down lab
EOF
