#!/usr/bin/env bash
# Installs s3s-fs (a file-backed S3 server from crates.io; no S3 server is packaged in Debian)
# for the object-store tests and benchmarks, if it is not on PATH or in ~/.cargo/bin already.
# 0.14.1 is the newest release that builds with rustc 1.95 (0.17 needs >= 1.96); ~5 min on 2 cores.
set -euo pipefail
export PATH="$PATH:$HOME/.cargo/bin"
if command -v s3s-fs >/dev/null 2>&1; then
    echo "s3s-fs: $(command -v s3s-fs)"
    exit 0
fi
echo "s3s-fs: installing s3s-fs@0.14.1 with cargo install (about 5 minutes)" >&2
nice -n 15 cargo install s3s-fs@0.14.1 --features binary --locked
command -v s3s-fs
