#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this): install and start
# the real components (scripts/deps.sh), then cargo test. Tests use real
# zfs-fuse, sshd, mbuffer...; under CI=true a missing component fails its
# test instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
# The OpenZFS lab's image (tests/it/openzfs.rs): built once per machine into the cache outside the
# clone (about 8 minutes here, mostly the DKMS compile); a no-op when cached.
bash scripts/openzfs-lab.sh build

if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH=$HOME/.cargo/bin:$PATH
fi
export PATH=$PATH:/usr/sbin:/sbin
# passed through to the tests: CI=true turns skips into failures
export CI="${CI:-}"

# One build, not a development loop: incremental caches would double the disk
# the build takes (CI ran out of disk with them).
export CARGO_INCREMENTAL=0
# Two test threads: the machine has 2 cores and the zfs-fuse daemon is shared.
exec cargo test --workspace -- --test-threads=2 2>&1
