#!/usr/bin/env bash
# A real OpenZFS lab: the kernel module (zfs-dkms from bookworm-backports) inside a qemu guest built
# from Debian packages alone, reached over SSH on a loopback port (DESIGN.md, "OpenZFS in a VM").
#
#   scripts/openzfs-lab.sh deps             install the host packages the lab needs
#   scripts/openzfs-lab.sh key              print the cache key (package versions; needs the mirror)
#   scripts/openzfs-lab.sh build [--force]  build the image once into the cache (a no-op when cached)
#   scripts/openzfs-lab.sh image            print the cached image's directory (exit 1: none)
#   scripts/openzfs-lab.sh up DIR           boot a throw-away overlay of the image; print DIR/lab.env
#   scripts/openzfs-lab.sh ssh DIR [CMD..]  ssh into the guest as root (login shell /bin/sh)
#   scripts/openzfs-lab.sh status DIR       running or not
#   scripts/openzfs-lab.sh down DIR         kill qemu, remove the overlay and the pool disks
#
# The image lives OUTSIDE the clone, in $FERRY_LAB_CACHE (default /var/cache/ferry-lab), under
# openzfs-<key>/ where <key> hashes the zfs-dkms, zfsutils-linux and linux-image-amd64 versions the
# mirror offers and this script's build recipe version: a new package version builds a new image,
# the same versions never build twice. `current` points at the newest complete image, so `up` works
# without the network. Stored: root.img.tar.zst (the durable, compressed image: `tar --sparse |
# zstd`), vmlinuz, initrd.img, the lab's SSH key, the guest's host key, image.env; root.img (sparse)
# is unpacked from the tarball when missing.
#
# `up DIR` attaches two sparse pool disks (DIR/site1.img, DIR/site2.img: one per site) that the guest
# mounts as ext4 on /site1 and /site2, so tests can make pools named per test on file vdevs there;
# copies the host's ferry binary (FERRY_BIN, default target/debug/ferry, stripped) to the guest's
# /usr/local/bin/ferry (both are Debian bookworm, glibc 2.36); and writes DIR/lab.env: PORT,
# KEY (a private key root and `lab` accept), KNOWN_HOSTS ([127.0.0.1]:PORT line), PID, ACCEL.
#
# Knobs: FERRY_LAB_CACHE, OZFS_PORT [a free one], OZFS_MEM [2048], OZFS_SMP [2],
# OZFS_BOOT_TIMEOUT [300 s], OZFS_SITE_SIZE [4G], OZFS_ACCEL [auto|kvm|tcg],
# OZFS_MIRROR [http://deb.debian.org/debian], FERRY_BIN.
#
# Acceleration: KVM only when /proc/cpuinfo has vmx/svm AND /dev/kvm is writable AND it is not the
# PVM module (kvm_pvm: a stock Debian kernel crawls there), else TCG (software emulation).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

# Bump when the build steps below change what is in the image: it is part of the cache key.
RECIPE=1
CACHE=${FERRY_LAB_CACHE:-/var/cache/ferry-lab}
MIRROR=${OZFS_MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${OZFS_SECMIRROR:-http://deb.debian.org/debian-security}
MEM=${OZFS_MEM:-2048}
SMP=${OZFS_SMP:-2}
SITE_SIZE=${OZFS_SITE_SIZE:-4G}
NICE=(nice -n 19)

log() { printf 'openzfs-lab [%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ------------------------------------------------------------------------------------------ host
HOST_PACKAGES=(debootstrap qemu-system-x86 qemu-utils e2fsprogs zstd openssh-client tar)

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

cmd_deps() {
    local missing=() p
    for p in "${HOST_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" = 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing host packages (${missing[*]}) and not root"
    # qemu-system-x86 must come from bookworm-backports: it has to match qemu-utils, which these
    # machines have from backports (bookworm's qemu-system-x86 7.2 conflicts with qemu-utils 10.0).
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
            "$MIRROR" > /etc/apt/sources.list.d/ferry-backports.sources
    fi
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -t bookworm-backports "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do installed "$p" || die "$p did not install"; done
}

# ------------------------------------------------------------------------------------------- key
# The versions the guest would get, asked from the mirror with apt's ordinary client and a private
# sources list and lists directory (the host's apt configuration is left alone).
resolve_versions() {
    local apt="$CACHE/apt"
    mkdir -p "$apt/lists/partial"
    cat > "$apt/sources.list" <<EOF
deb $MIRROR bookworm main contrib
deb $MIRROR bookworm-updates main contrib
deb $SECMIRROR bookworm-security main contrib
deb $MIRROR bookworm-backports main contrib
EOF
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Default-Release=")
    mkdir -p "$apt/cache"
    apt-get "${opts[@]}" update -qq >/dev/null 2>&1 || return 1
    local v k z
    k=$(apt-cache "${opts[@]}" policy linux-image-amd64 | awk '/Candidate:/ {print $2}')
    # zfs from backports: the newest version that any bookworm-backports line offers
    z=$(apt-cache "${opts[@]}" madison zfs-dkms | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
    v=$(apt-cache "${opts[@]}" madison zfsutils-linux | awk -F'|' '/bookworm-backports/ {gsub(/ /,"",$2); print $2; exit}')
    [ -n "$k" ] && [ -n "$z" ] && [ -n "$v" ] && [ "$k" != "(none)" ] || return 1
    printf 'linux-image-amd64=%s zfs-dkms=%s zfsutils-linux=%s recipe=%s\n' "$k" "$z" "$v" "$RECIPE"
}

cache_key() { printf '%s' "$1" | sha256sum | cut -c1-12; }

cmd_key() {
    local versions
    versions=$(resolve_versions) || die "cannot ask $MIRROR for package versions"
    echo "$versions"
    echo "openzfs-$(cache_key "$versions")"
}

# The cached image directory: `current` (no network needed), else nothing.
image_dir() {
    local d="$CACHE/current"
    [ -e "$d/.complete" ] || return 1
    realpath "$d"
}

cmd_image() { image_dir || { log "no cached image under $CACHE (run: $0 build)"; return 1; }; }

# ------------------------------------------------------------------------------------------ build
# Everything below runs in the chroot, niced, with a clean environment.
inch() {
    "${NICE[@]}" chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}
mount_chroot() {
    mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
    mountpoint -q "$ROOTFS/sys" || mount -t sysfs sysfs "$ROOTFS/sys"
    mountpoint -q "$ROOTFS/dev" || mount --bind /dev "$ROOTFS/dev"
    mountpoint -q "$ROOTFS/dev/pts" || mount --bind /dev/pts "$ROOTFS/dev/pts"
}
umount_chroot() {
    local m
    for m in dev/pts dev sys proc; do
        if mountpoint -q "$ROOTFS/$m"; then umount "$ROOTFS/$m" || umount -l "$ROOTFS/$m"; fi
    done
}
guest_kver() { ls "$ROOTFS/lib/modules" | sort -V | tail -1; }

# step NAME FUNC: time it into $OUT/timings.log
step() {
    local name=$1 t0=$SECONDS
    log "build: $name"
    "$2"
    printf '%s %s %ds\n' "$(date -Is)" "$name" $((SECONDS - t0)) >> "$OUT/timings.log"
}

b_debootstrap() {
    "${NICE[@]}" debootstrap --variant=minbase --components=main,contrib \
        --include=systemd-sysv,udev,kmod,dbus,openssh-server,iproute2,initramfs-tools,procps,less,mbuffer,pv,zstd,lz4,e2fsprogs \
        bookworm "$ROOTFS" "$MIRROR" > "$OUT/debootstrap.log" 2>&1 \
        || { tail -20 "$OUT/debootstrap.log" >&2; die "debootstrap failed"; }
}

b_apt() {
    cp "$CACHE/apt/sources.list" "$ROOTFS/etc/apt/sources.list"
    # never start daemons inside the build chroot
    printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
    chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
    mount_chroot
    inch apt-get update -q >> "$OUT/apt.log" 2>&1
    # kernel from bookworm (headers: dkms needs them), then zfs from backports. zfs-dkms's postinst
    # tries the running (host) kernel, which has no headers, and may fail: fixed up below.
    inch apt-get install -y -q --no-install-recommends linux-image-amd64 linux-headers-amd64 \
        >> "$OUT/apt.log" 2>&1 || { tail -30 "$OUT/apt.log" >&2; die "kernel install failed"; }
}

b_zfs() {
    inch apt-get install -y -q --no-install-recommends -t bookworm-backports zfs-dkms zfsutils-linux \
        >> "$OUT/apt.log" 2>&1 || log "apt-get install zfs failed (fixed up with dkms install)"
    local kver zver
    kver=$(guest_kver)
    zver=$(ls "$ROOTFS/usr/src" | sed -n 's/^zfs-//p' | sort -V | tail -1)
    [ -n "$zver" ] || die "no /usr/src/zfs-* in the chroot"
    if ! inch dkms status -k "$kver" "zfs/$zver" | grep -q installed; then
        log "build: dkms install zfs/$zver -k $kver"
        inch dkms install "zfs/$zver" -k "$kver" >> "$OUT/apt.log" 2>&1 \
            || { tail -30 "$OUT/apt.log" >&2; die "dkms install failed"; }
    fi
    inch dpkg --configure -a >> "$OUT/apt.log" 2>&1 || true
    find "$ROOTFS/lib/modules/$kver" -name 'zfs.ko*' | grep -q . || die "zfs.ko missing for $kver"
}

b_config() {
    local kver
    kver=$(guest_kver)
    ssh-keygen -q -t ed25519 -N '' -C ferry-openzfs-lab -f "$OUT/id_ed25519"
    echo ozfs > "$ROOTFS/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 ozfs\n' > "$ROOTFS/etc/hosts"
    printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$ROOTFS/etc/fstab"
    printf 'nameserver 10.0.2.3\n' > "$ROOTFS/etc/resolv.conf"
    mkdir -p "$ROOTFS/etc/systemd/network"
    printf '[Match]\nName=en* eth*\n\n[Network]\nDHCP=ipv4\n' > "$ROOTFS/etc/systemd/network/10-dhcp.network"
    inch systemctl enable systemd-networkd.service >/dev/null 2>&1
    inch systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1 || true
    # sshd: key only, no DNS, room for parallel tests
    mkdir -p "$ROOTFS/etc/ssh/sshd_config.d"
    printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\nMaxSessions 64\nMaxStartups 64:30:128\n' \
        > "$ROOTFS/etc/ssh/sshd_config.d/lab.conf"
    # one host key, made here, so the lab can hand out a known_hosts line without asking the guest
    rm -f "$ROOTFS"/etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -C ozfs -f "$ROOTFS/etc/ssh/ssh_host_ed25519_key"
    printf 'HostKey /etc/ssh/ssh_host_ed25519_key\n' > "$ROOTFS/etc/ssh/sshd_config.d/hostkey.conf"
    cp "$ROOTFS/etc/ssh/ssh_host_ed25519_key.pub" "$OUT/host_key.pub"
    inch systemctl enable ssh.service >/dev/null 2>&1
    # the plain account: root, whose login shell is /bin/sh (no rc files on every command)
    inch usermod -s /bin/sh root
    install -d -m 700 "$ROOTFS/root/.ssh"
    install -m 600 "$OUT/id_ed25519.pub" "$ROOTFS/root/.ssh/authorized_keys"
    # a non-root account for `zfs allow` work
    inch useradd -m -s /bin/sh lab
    install -d -m 700 "$ROOTFS/home/lab/.ssh"
    install -m 600 "$OUT/id_ed25519.pub" "$ROOTFS/home/lab/.ssh/authorized_keys"
    inch chown -R lab:lab /home/lab/.ssh
    # zfs is loaded by zfs-load-module.service in parallel with sshd (a modules-load.d entry would put
    # its slow init in front of sshd); a fixed hostid
    rm -f "$ROOTFS/etc/modules-load.d/zfs.conf"
    [ -f "$ROOTFS/etc/hostid" ] || inch zgenhostid
    mkdir -p "$ROOTFS/site1" "$ROOTFS/site2"
    printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >> "$ROOTFS/etc/initramfs-tools/modules"
    sort -u -o "$ROOTFS/etc/initramfs-tools/modules" "$ROOTFS/etc/initramfs-tools/modules"
    sed -i 's/^MODULES=.*/MODULES=most/' "$ROOTFS/etc/initramfs-tools/initramfs.conf"
    inch update-initramfs -u -k "$kver" >> "$OUT/apt.log" 2>&1
    inch apt-get install -y -q --no-install-recommends netcat-openbsd >> "$OUT/apt.log" 2>&1
    mkdir -p "$ROOTFS/etc/systemd/journald.conf.d"
    printf '[Journal]\nStorage=volatile\n' > "$ROOTFS/etc/systemd/journald.conf.d/lab.conf"
    inch apt-get clean
    rm -f "$ROOTFS/usr/sbin/policy-rc.d"
}

b_image() {
    local kver
    kver=$(guest_kver)
    umount_chroot
    cp "$ROOTFS/boot/vmlinuz-$kver" "$OUT/vmlinuz"
    cp "$ROOTFS/boot/initrd.img-$kver" "$OUT/initrd.img"
    {
        echo "VERSIONS='$VERSIONS'"
        echo "KVER=$kver"
        echo "ZFS=$(inch dpkg-query -W -f='${Version}' zfsutils-linux)"
        echo "BUILT=$(date -Is)"
    } > "$OUT/image.env"
    "${NICE[@]}" mkfs.ext4 -q -F -L ozfsroot -d "$ROOTFS" "$OUT/root.img" 4G
    # the durable artifact (what a CI cache keeps): sparse-aware tar, zstd
    (cd "$OUT" && "${NICE[@]}" tar --sparse -cf - root.img | "${NICE[@]}" zstd -q -3 -T2 -o root.img.tar.zst)
    rm -rf --one-file-system "$ROOTFS"
}

cmd_build() {
    [ "${1:-}" = --force ] && force=1 || force=0
    mkdir -p "$CACHE"
    # the host side first: `up` needs qemu even when the image comes from a cache
    [ "$(id -u)" = 0 ] && cmd_deps
    if ! VERSIONS=$(resolve_versions); then
        # offline: an image that exists is good enough; none is an error
        if dir=$(image_dir); then log "cannot reach $MIRROR; using the cached image $dir"; return 0; fi
        die "cannot reach $MIRROR and no image is cached under $CACHE"
    fi
    local name
    name=openzfs-$(cache_key "$VERSIONS")
    OUT=$CACHE/$name
    if [ "$force" = 0 ] && [ -e "$OUT/.complete" ]; then
        ln -sfn "$name" "$CACHE/current"
        log "cached: $OUT ($VERSIONS)"
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "building the image needs root (debootstrap, chroot)"
    # one build at a time (test.sh of two clones on one machine)
    exec 9> "$CACHE/.build.lock"
    flock 9
    if [ "$force" = 0 ] && [ -e "$OUT/.complete" ]; then ln -sfn "$name" "$CACHE/current"; return 0; fi
    ROOTFS=$OUT/root
    umount_chroot 2>/dev/null || true
    if awk -v r="$ROOTFS/" 'index($2, r) == 1 {f=1} END {exit !f}' /proc/mounts; then
        die "something is still mounted under $ROOTFS"
    fi
    rm -rf --one-file-system "$OUT"
    mkdir -p "$OUT"
    trap umount_chroot EXIT
    log "building $OUT ($VERSIONS); about 5 minutes on a quiet machine, 8-13 on a loaded one"
    local t0=$SECONDS
    step debootstrap b_debootstrap
    step kernel b_apt
    step zfs-dkms b_zfs
    step config b_config
    step image b_image
    trap - EXIT
    printf '%s build-total %ds\n' "$(date -Is)" $((SECONDS - t0)) >> "$OUT/timings.log"
    touch "$OUT/.complete"
    ln -sfn "$name" "$CACHE/current"
    log "built in $((SECONDS - t0)) s: $OUT ($(du -h "$OUT/root.img.tar.zst" | cut -f1) compressed)"
    cat "$OUT/image.env"
}

# ------------------------------------------------------------------------------------------ run
lab_dir() {
    [ -n "${1:-}" ] || die "usage: $0 $CMD DIR"
    mkdir -p "$1"
    realpath "$1"
}

qemu_pid() {
    local pid
    [ -f "$DIR/qemu.pid" ] || return 1
    pid=$(cat "$DIR/qemu.pid")
    # the pid must still be our qemu (the pid file can outlive it)
    grep -qa "ozfs-lab-$DIR" "/proc/$pid/cmdline" 2>/dev/null || return 1
    echo "$pid"
}

pick_accel() {
    ACCEL=${OZFS_ACCEL:-auto}
    if [ "$ACCEL" = auto ]; then
        if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then
            ACCEL=kvm
        else
            ACCEL=tcg
        fi
    fi
    case $ACCEL in
        kvm) ACCEL_ARGS=(-enable-kvm -cpu host) ;;
        tcg) ACCEL_ARGS=(-accel tcg,thread=multi,tb-size=512 -cpu max) ;;
        *) die "OZFS_ACCEL=$ACCEL: kvm, tcg or auto" ;;
    esac
}

free_port() {
    local p
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    die "no free port found"
}

gssh() {
    ssh -i "$IMAGE/id_ed25519" -p "$PORT" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$DIR/known_hosts" -o StrictHostKeyChecking=yes -o LogLevel=ERROR \
        -o ConnectTimeout=5 root@127.0.0.1 "$@"
}

unpack_image() {
    [ -f "$IMAGE/root.img" ] && return 0
    exec 9> "$CACHE/.build.lock"
    flock 9
    [ -f "$IMAGE/root.img" ] && return 0
    log "unpacking $IMAGE/root.img.tar.zst"
    (cd "$IMAGE" && zstd -q -d -c root.img.tar.zst | tar --sparse -xf - && chmod 444 root.img)
}

# Starts the guest on $PORT, daemonized; fails (qemu's words on stderr) if qemu does.
start_qemu() {
    # -name carries DIR so qemu_pid/down can tell our qemu from any other
    nice -n "${OZFS_QEMU_NICE:-10}" qemu-system-x86_64 "${ACCEL_ARGS[@]}" -m "$MEM" -smp "$SMP" \
        -name "ozfs-lab-$DIR" -display none -serial "file:$DIR/console.log" -monitor none \
        -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
        -append "root=/dev/vda rw console=ttyS0 panic=-1" -no-reboot \
        -drive "file=$DIR/root.qcow2,format=qcow2,if=none,id=root,cache=unsafe" \
        -device virtio-blk-pci,drive=root,serial=root \
        -drive "file=$DIR/site1.img,format=raw,if=none,id=site1,cache=unsafe,discard=unmap" \
        -device virtio-blk-pci,drive=site1,serial=site1 \
        -drive "file=$DIR/site2.img,format=raw,if=none,id=site2,cache=unsafe,discard=unmap" \
        -device virtio-blk-pci,drive=site2,serial=site2 \
        -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:22" \
        -device virtio-net-pci,netdev=n0 \
        -object rng-random,id=rng0,filename=/dev/urandom -device virtio-rng-pci,rng=rng0 \
        -daemonize -pidfile "$DIR/qemu.pid"
}

cmd_up() {
    DIR=$(lab_dir "${1:-}")
    IMAGE=$(image_dir) || die "no cached image under $CACHE (run: $0 build)"
    if pid=$(qemu_pid); then log "already running (pid $pid)"; cat "$DIR/lab.env"; return 0; fi
    command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing (run: $0 deps)"
    unpack_image
    rm -f "$DIR/root.qcow2" "$DIR/site1.img" "$DIR/site2.img" "$DIR/lab.env"
    qemu-img create -q -f qcow2 -b "$IMAGE/root.img" -F raw "$DIR/root.qcow2"
    truncate -s "$SITE_SIZE" "$DIR/site1.img" "$DIR/site2.img"
    pick_accel
    local t0=$SECONDS
    # a free port can be taken by another process before qemu binds it (tests start servers on
    # random ports all the time): qemu then refuses the forwarding rule, and another port is tried
    local try
    for try in 1 2 3 4 5; do
        PORT=${OZFS_PORT:-$(free_port)}
        log "booting ($ACCEL, port $PORT)"
        if start_qemu 2> "$DIR/qemu.err"; then break; fi
        cat "$DIR/qemu.err" >&2
        grep -q 'Could not set up host forwarding' "$DIR/qemu.err" && [ -z "${OZFS_PORT:-}" ] && [ "$try" -lt 5 ] \
            || die "qemu failed to start"
        log "port $PORT was taken meanwhile; another"
    done
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$IMAGE/host_key.pub")" > "$DIR/known_hosts"
    local deadline=$((SECONDS + ${OZFS_BOOT_TIMEOUT:-300}))
    until gssh true 2>/dev/null; do
        qemu_pid >/dev/null || { tail -20 "$DIR/console.log" >&2; die "qemu exited during boot"; }
        [ $SECONDS -lt $deadline ] || { tail -20 "$DIR/console.log" >&2; cmd_down "$DIR"; die "no ssh after ${OZFS_BOOT_TIMEOUT:-300} s"; }
        sleep 1
    done
    local boot=$((SECONDS - t0))
    # the two sites' disks, and zfs loaded (zfs-load-module.service may still be at it)
    gssh 'for s in 1 2; do mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1 /dev/disk/by-id/virtio-site$s && mount /dev/disk/by-id/virtio-site$s /site$s || exit 1; done; modprobe zfs && zpool list >/dev/null' \
        || die "preparing the guest failed"
    local bin=${FERRY_BIN:-${CARGO_TARGET_DIR:-target}/debug/ferry}
    if [ -x "$bin" ]; then
        # stripped: a debug build is mostly debug info, and ssh's crypto is emulated here
        objcopy --strip-debug "$bin" "$DIR/ferry" 2>/dev/null || cp "$bin" "$DIR/ferry"
        gssh 'cat > /usr/local/bin/ferry && chmod 755 /usr/local/bin/ferry && /usr/local/bin/ferry --version' \
            < "$DIR/ferry" > "$DIR/ferry.version" || die "ferry does not run in the guest"
        rm -f "$DIR/ferry"
    else
        log "no ferry binary at $bin: the guest has none"
    fi
    cat > "$DIR/lab.env" <<EOF
PORT=$PORT
KEY=$IMAGE/id_ed25519
KNOWN_HOSTS=$DIR/known_hosts
PID=$(cat "$DIR/qemu.pid")
ACCEL=$ACCEL
BOOT_SECONDS=$boot
READY_SECONDS=$((SECONDS - t0))
IMAGE=$IMAGE
EOF
    log "up in $((SECONDS - t0)) s (ssh after $boot s)"
    cat "$DIR/lab.env"
}

cmd_down() {
    DIR=$(lab_dir "${1:-}")
    local pid
    if pid=$(qemu_pid); then
        # the overlay is thrown away: no clean shutdown needed
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/qemu.pid" "$DIR/root.qcow2" "$DIR/site1.img" "$DIR/site2.img" "$DIR/lab.env"
    log "down: $DIR"
}

cmd_ssh() {
    DIR=$(lab_dir "${1:-}")
    shift
    qemu_pid >/dev/null || die "not running in $DIR"
    IMAGE=$(image_dir) || die "no image"
    # shellcheck disable=SC1091
    PORT=$(sed -n 's/^PORT=//p' "$DIR/lab.env")
    gssh "$@"
}

cmd_status() {
    DIR=$(lab_dir "${1:-}")
    if pid=$(qemu_pid); then echo "running pid=$pid $(grep ^PORT= "$DIR/lab.env" 2>/dev/null)"; else echo stopped; return 1; fi
}

CMD=${1:-}
[ $# -gt 0 ] && shift
case $CMD in
    deps) cmd_deps ;;
    key) cmd_key ;;
    build) cmd_build "$@" ;;
    image) cmd_image ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    ssh) cmd_ssh "$@" ;;
    status) cmd_status "$@" ;;
    *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
