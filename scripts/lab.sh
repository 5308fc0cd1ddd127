#!/usr/bin/env bash
# A self-contained lab: two zfs-fuse pools on sparse files (a "remote" source reached over a
# loopback sshd with its own host key, and a local destination) and a ferry config with a few
# pairs. Used by the demo, the benchmarks and the screenshots.
#
#   scripts/lab.sh up   [DIR]   create (idempotent) and print the config path
#   scripts/lab.sh down [DIR]   stop sshd, destroy the pools, remove DIR
#
# Pools are named after DIR's hash so two labs never collide. Default DIR: ./lab
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

cmd=${1:-up}
dir=$(realpath -m "${2:-lab}")
tag=$(printf '%s' "$dir" | md5sum | cut -c1-6)
src=labsrc$tag
dst=labdst$tag
size=${LAB_POOL_SIZE:-2G}

sshd_pid() { [ -f "$dir/sshd.pid" ] && cat "$dir/sshd.pid" 2>/dev/null; }

destroy_pool() {
    local p=$1
    zpool list -H -o name "$p" >/dev/null 2>&1 || return 0
    for _ in $(seq 1 20); do
        zpool destroy -f "$p" 2>/dev/null && return 0
        sleep 0.5
    done
    echo "lab: could not destroy pool $p" >&2
    return 1
}

if [ "$cmd" = down ]; then
    pid=$(sshd_pid || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    for f in "$dir"/s3/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
    [ -d "$dir/etcd" ] && bash scripts/etcd.sh down "$dir/etcd"
    ok=1
    destroy_pool "$src" || ok=0
    destroy_pool "$dst" || ok=0
    if [ "$ok" = 0 ]; then
        # its mountpoints are under $dir: removing it now would delete files inside the pools
        echo "lab: $dir kept; run 'scripts/lab.sh down $dir' again" >&2
        exit 1
    fi
    rm -rf "$dir"
    echo "lab: $dir removed"
    exit 0
fi
[ "$cmd" = up ] || { echo "usage: scripts/lab.sh up|down [DIR]" >&2; exit 2; }

bash scripts/deps.sh >/dev/null
mkdir -p "$dir/mnt" "$dir/ssh" "$dir/state"

# pools on sparse files
for p in "$src" "$dst"; do
    if ! zpool list -H -o name "$p" >/dev/null 2>&1; then
        truncate -s "$size" "$dir/$p.img"
        zpool create -f -m "$dir/mnt/$p" "$p" "$dir/$p.img" >/dev/null
    fi
done
zfs list -H -o name "$dst/replica" >/dev/null 2>&1 || zfs create "$dst/replica"

# ssh logs in as a plain account (uid 0, /bin/sh, its own home), not root: root's shell here runs
# `pyenv init` on every command (about 240 ms), which would hide ferry's own cost. The same account
# as tests/it/common/sshd.rs, added once under the same lock.
lab_user=ferrylab
lab_home=/var/lib/ferrylab
(
    flock 9
    mkdir -p "$lab_home"
    grep -q "^$lab_user:" /etc/passwd || echo "$lab_user:x:0:0:ferry test lab:$lab_home:/bin/sh" >> /etc/passwd
    # `*`: no password login (`!` would lock the account for sshd's key login too)
    grep -q "^$lab_user:" /etc/shadow || echo "$lab_user:*:20000:0:99999:7:::" >> /etc/shadow
) 9>/run/ferry-lab-user.lock

# a loopback sshd with its own host key, our client key and a known_hosts naming it
ssh=$dir/ssh
[ -f "$ssh/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$ssh/host_ed25519" -C lab-host
[ -f "$ssh/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -f "$ssh/id_ed25519" -C lab-client
cp "$ssh/id_ed25519.pub" "$ssh/authorized_keys"
port_file=$dir/sshd.port
if [ -z "$(sshd_pid || true)" ] || ! kill -0 "$(sshd_pid)" 2>/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "$port" > "$port_file"
    cat > "$ssh/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $ssh/host_ed25519
AuthorizedKeysFile $ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $dir/sshd.pid
MaxSessions 64
MaxStartups 64
# VERBOSE logs each exec ("Starting session: command"): the benchmarks count them
LogLevel VERBOSE
EOF
    mkdir -p /run/sshd
    /usr/sbin/sshd -f "$ssh/sshd_config" -E "$dir/sshd.log"
    for _ in $(seq 1 50); do
        [ -f "$dir/sshd.pid" ] && break
        sleep 0.1
    done
fi
port=$(cat "$port_file")
echo "$lab_user" > "$ssh/user"
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$ssh/host_ed25519.pub")" > "$ssh/known_hosts"

# source datasets with some data
for ds in home vm db; do
    if ! zfs list -H -o name "$src/$ds" >/dev/null 2>&1; then
        zfs create "$src/$ds"
    fi
done
mnt=$dir/mnt/$src
[ -f "$mnt/home/notes.txt" ] || { seq 1 20000 > "$mnt/home/notes.txt"; mkdir -p "$mnt/home/docs"; head -c 8M /dev/urandom > "$mnt/home/docs/report.bin"; }
[ -f "$mnt/vm/disk.img" ] || head -c 48M /dev/urandom > "$mnt/vm/disk.img"
[ -f "$mnt/db/table.dat" ] || head -c 16M /dev/urandom > "$mnt/db/table.dat"

cat > "$dir/ferry.toml" <<EOF
# ferry demo lab: "store1" is this machine's loopback sshd, standing in for a remote site.
state_dir = "$dir/state"

[defaults]
transport = "ssh"
wlag = "30m"
clag = "2h"
keep = 3

[hosts.store1]
address = "127.0.0.1"
port = $port
user = "$lab_user"
key = "$ssh/id_ed25519"
known_hosts = "$ssh/known_hosts"

[[pair]]
source = "store1:$src/home"
destination = "$dst/replica/home"

[[pair]]
source = "store1:$src/vm"
destination = "$dst/replica/vm"
wlag = "10m"

[[pair]]
source = "store1:$src/db"
destination = "$dst/replica/db"
EOF
# LAB_BLOCK=1 (the demo) adds a block pair: a VM image on store1 replicated by changed chunks,
# with this checkout's release ferry as the peer on both ends
if [ "${LAB_BLOCK:-0}" = 1 ]; then
    mkdir -p "$dir/images" "$dir/replicas"
    [ -f "$dir/images/vm1.img" ] || head -c 32M /dev/urandom > "$dir/images/vm1.img"
    # the peer's path goes into store1's table, after its known_hosts line
    sed -i "s|^known_hosts = \"$ssh/known_hosts\"\$|&\nferry_path = \"$(cd "$(dirname "$0")/.." && pwd)/target/release/ferry\"|" "$dir/ferry.toml"
    cat >> "$dir/ferry.toml" <<EOF

[[pair]]
kind = "block"
source = "store1:$dir/images/vm1.img"
destination = "$dir/replicas/vm1.img"
EOF
fi
# LAB_OBJECT=1 (the demo) adds two S3 sites (s3s-fs on loopback, file-backed under $dir/s3):
# an object pair and a two-site object cluster; and etcd on loopback ($dir/etcd) as the
# coordination engine, so several `cluster run` instances can share the cluster and every pair's
# lock is a lease there too
if [ "${LAB_OBJECT:-0}" = 1 ]; then
    etcd_url=$(bash scripts/etcd.sh up "$dir/etcd")
    export PATH="$PATH:$HOME/.cargo/bin"
    mkdir -p "$dir/s3"
    for site in a b; do
        root="$dir/s3/$site"
        mkdir -p "$root/photos" "$root/photos-dr" "$root/shared"
        pidf="$dir/s3/$site.pid" portf="$dir/s3/$site.port"
        if ! { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }; then
            port=$(free_port)
            start_s3s_fs "$root" "$port" "LAB${site^^}" "lab-$site-secret" "$dir/s3/$site.log" >"$pidf"
            echo "$port" >"$portf"
        fi
        printf '[default]\naws_access_key_id = LAB%s\naws_secret_access_key = lab-%s-secret\n' "${site^^}" "$site" >"$dir/s3/$site.cred"
        chmod 600 "$dir/s3/$site.cred"
    done
    cat >> "$dir/ferry.toml" <<EOF

[coordination]
engine = "etcd"
endpoints = ["$etcd_url"]
lease = "3s"

[hosts.s3a]
endpoint = "http://127.0.0.1:$(cat "$dir/s3/a.port")"
credentials = "$dir/s3/a.cred"

[hosts.s3b]
endpoint = "http://127.0.0.1:$(cat "$dir/s3/b.port")"
credentials = "$dir/s3/b.cred"

[[pair]]
kind = "object"
source = "s3a:photos/2026/"
destination = "s3b:photos-dr/2026/"

[[cluster]]
name = "shared"
persist_path = "$dir/state/clusters/shared"
settle = "1s"
coordination = "etcd"
volumes = [
  { at = "s3a:shared", listen = true, update = true },
  { at = "s3b:shared", listen = true, update = true },
]
EOF
fi
echo "$dir/ferry.toml"
