#!/usr/bin/env bash
# Make sure the zfs-fuse daemon answers: start it if `zpool list` fails.
#
# zfs-fuse daemonizes itself (no systemd here). Facts found by trying it on
# Debian 12 (zfs-fuse 0.7.0-25):
# - `zfs-fuse --pidfile /run/zfs-fuse.pid --no-kstat-mount` returns at once
#   and `zpool list` answers within ~0.1 s.
# - It creates /var/lock/zfs (and /run/zfs) itself; we create them anyway.
# - A stale pidfile (pid of a daemon that is gone) makes zfs-fuse exit 1
#   WITHOUT any message, so a pidfile whose process is not alive is removed
#   first.
# - A daemon that was just sent SIGTERM can linger for a moment; starting a
#   second one meanwhile fails, so we wait for a live daemon before starting.
# - FUSE mounts of a daemon that died stay behind as "Transport endpoint is
#   not connected"; they are lazily unmounted when no daemon runs.
# - A restarted daemon re-imports the pools in /var/lib/zfs/zpool.cache but
#   mounts nothing (the init script runs `zfs mount -a`): we do the same.
# - The daemon can deadlock under load (seen once: ~770 threads in futex
#   wait; `zpool list` still answered but every FUSE access hung). A quick
#   probe of one mount catches that and says how to recover.
# The daemon is shared by everyone on the machine: this script never stops it.
set -euo pipefail

PIDFILE=${ZFS_FUSE_PIDFILE:-/run/zfs-fuse.pid}
WAIT_SECS=${ZFS_FUSE_WAIT_SECS:-20}

# (subshell: a zpool killed by SIGABRT while a daemon exits prints "Aborted")
zpool_ok() { (zpool list >/dev/null 2>&1) 2>/dev/null; }

if ! command -v zfs-fuse >/dev/null 2>&1 && [ ! -x /usr/sbin/zfs-fuse ]; then
    echo "zfs-fuse-start: zfs-fuse is not installed (run scripts/deps.sh)" >&2
    exit 1
fi
PATH=$PATH:/usr/sbin:/sbin

# Every FUSE mount of the daemon must answer too (see "deadlock" above).
fuse_ok() {
    local m
    m=$(awk '$3 == "fuse.zfs" { print $2; exit }' /proc/mounts)
    [ -z "$m" ] && return 0
    timeout 5 stat -f "$(printf '%b' "$m")" >/dev/null 2>&1
}

hung() {
    echo "zfs-fuse-start: zfs-fuse answers 'zpool list' but its FUSE mounts hang" >&2
    echo "zfs-fuse-start: the daemon is deadlocked; recover with:" >&2
    echo "  kill -9 \$(cat $PIDFILE); bash $0; (pools re-import; zfs mount -a)" >&2
    exit 1
}

if zpool_ok; then
    fuse_ok || hung
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "zfs-fuse-start: zpool list fails and only root can start zfs-fuse" >&2
    exit 1
fi

daemon_alive() {
    local pid
    [ -s "$PIDFILE" ] || return 1
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    # a zombie (state Z) is not alive
    ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# A daemon that is running but not answering yet (starting, or busy): give
# it a few seconds before deciding to start another one.
if daemon_alive; then
    for _ in $(seq 1 50); do
        zpool_ok && exit 0
        daemon_alive || break
        sleep 0.1
    done
fi

# any live (non-zombie) zfs-fuse process, whatever pidfile it used
live_zfs_fuse() {
    local d
    for d in /proc/[0-9]*; do
        [ "$(cat "$d/comm" 2>/dev/null)" = zfs-fuse ] || continue
        grep -q '^State:[[:space:]]*Z' "$d/status" 2>/dev/null || return 0
    done
    return 1
}

if ! daemon_alive && ! live_zfs_fuse; then
    rm -f "$PIDFILE"
    # stale FUSE mounts of a dead daemon
    awk '$3 == "fuse.zfs" { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$(printf '%b' "$m")" 2>/dev/null || true
    done
fi

[ -e /dev/fuse ] || { mknod /dev/fuse c 10 229 && chmod 666 /dev/fuse; } || true
# /var/lock is a symlink to /run/lock on Debian; create the target
mkdir -p "$(readlink -f /var/lock)/zfs" /run/zfs "$(dirname "$PIDFILE")"

if ! live_zfs_fuse; then
    rc=0
    zfs-fuse --pidfile "$PIDFILE" --no-kstat-mount || rc=$?
    if [ "$rc" != 0 ]; then
        echo "zfs-fuse-start: 'zfs-fuse --pidfile $PIDFILE --no-kstat-mount' failed (exit $rc)" >&2
    fi
fi

deadline=$((SECONDS + WAIT_SECS))
while [ "$SECONDS" -lt "$deadline" ]; do
    if zpool_ok; then
        zfs mount -a 2>/dev/null || true
        exit 0
    fi
    sleep 0.2
done

echo "zfs-fuse-start: zfs-fuse daemon not answering 'zpool list' after ${WAIT_SECS}s" >&2
zpool list >&2 || true
exit 1
