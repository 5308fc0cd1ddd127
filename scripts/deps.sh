#!/usr/bin/env bash
# Install and start what the real-component tests need (see DESIGN.md,
# "Testing for real"). Idempotent: a second run installs nothing and only
# checks. Needs root (or passwordless sudo) when a package is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

PACKAGES=(zfs-fuse openssh-server openssh-client mbuffer zstd sanoid tmux pv bc python3 nsca-client nsca systemd btrfs-progs btrbk xfsprogs rsync rclone etcd-server curl)

SUDO=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        SUDO=(false)
    fi
fi

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for p in "${PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "${SUDO[*]}" = false ]; then
        echo "deps: missing packages (${missing[*]}) and not root: cannot install" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    # Maintainer scripts may try to start daemons (zfs-fuse, sshd); without
    # an init system that can fail harmlessly: we start what we need below.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do
        installed "$p" || { echo "deps: $p did not install" >&2; exit 1; }
    done
fi

# FUSE device for zfs-fuse
if [ ! -e /dev/fuse ]; then
    "${SUDO[@]}" modprobe fuse 2>/dev/null || true
fi
if [ ! -e /dev/fuse ]; then
    "${SUDO[@]}" mknod /dev/fuse c 10 229
    "${SUDO[@]}" chmod 666 /dev/fuse
fi
if [ ! -c /dev/fuse ]; then
    echo "deps: /dev/fuse is missing or not a character device" >&2
    exit 1
fi

# sshd refuses to start without its privilege-separation directory
[ -d /run/sshd ] || "${SUDO[@]}" mkdir -p -m 0755 /run/sshd

"${SUDO[@]:-env}" bash scripts/zfs-fuse-start.sh

# cargo: rustup installs it in ~/.cargo/bin, which a non-login shell may lack
if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH=$HOME/.cargo/bin:$PATH
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "deps: cargo not found (neither on PATH nor in ~/.cargo/bin)" >&2
    exit 1
fi

# s3s-fs: a file-backed S3 server for the object-store tests (not packaged in Debian)
bash scripts/s3s-fs.sh >/dev/null

# moto: a second S3 implementation (and boto3, an S3 client no one here wrote) for the key
# tests; from PyPI, for the python3 the tests run
if ! python3 -c 'import moto.server, boto3' 2>/dev/null; then
    echo "deps: installing moto[server] (PyPI)"
    python3 -m pip install -q --disable-pip-version-check 'moto[server]' >/dev/null
    python3 -c 'import moto.server, boto3' || { echo "deps: moto did not install" >&2; exit 1; }
fi

pools=$(zpool list -H -o name 2>/dev/null | wc -l)
echo "deps: ok: ${#PACKAGES[@]} packages present (${#missing[@]} installed now), /dev/fuse ok, zfs-fuse answering ($pools pools), $(cargo --version)"
