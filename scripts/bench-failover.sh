#!/usr/bin/env bash
# Failover benchmark: three release `ferry cluster run` instances with one config coordinated by
# etcd (scripts/etcd.sh, loopback), a two-site object cluster on two s3s-fs servers with SMALL
# objects (default 2,000) in its journal's view. The working instance is SIGKILLed KILLS times
# (default 10) and replaced; each time the script measures, from the kill:
#   takeover - until another instance logs that it works the cluster (lease held, journal open)
#   resumed  - until that instance has finished a cycle (status.json from its pid)
# and prints min / median / max and each against the lease (target: takeover <= 2 x lease).
#   LEASE=2 KILLS=20 scripts/bench-failover.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
LEASE=${LEASE:-5}
KILLS=${KILLS:-10}
SMALL=${SMALL:-2000}
command -v s3s-fs >/dev/null || { echo "s3s-fs is missing: run scripts/s3s-fs.sh" >&2; exit 2; }
command -v etcd >/dev/null || { echo "etcd is missing: apt-get install -y etcd-server" >&2; exit 2; }

. scripts/lib.sh
build_release

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-failover.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    pkill -f "$WORK/ferry.toml" 2>/dev/null || true
    bash scripts/etcd.sh down "$WORK/etcd" >/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
start_server() { # NAME ROOT PORT
    local pid
    pid=$(start_s3s_fs "$2" "$3" "AK$1" "SK$1-secret") || exit 1
    PIDS+=("$pid")
}
PA=$(free_port); PB=$(free_port)
mkdir -p "$WORK/a/shared" "$WORK/b/shared"
# the objects are there before the cluster starts: its first cycle journals them all
python3 - "$WORK/a/shared" "$SMALL" <<'PYEOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 20}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"o{i}.bin"), "wb") as f:
        f.write(os.urandom(4096 + (i * 7919) % 60000))
PYEOF
start_server A "$WORK/a" "$PA"
start_server B "$WORK/b" "$PB"
ETCD=$(bash scripts/etcd.sh up "$WORK/etcd")
printf '[default]\naws_access_key_id = AKA\naws_secret_access_key = SKA-secret\n' >"$WORK/a.cred"
printf '[default]\naws_access_key_id = AKB\naws_secret_access_key = SKB-secret\n' >"$WORK/b.cred"
cat >"$WORK/ferry.toml" <<EOF
state_dir = "$WORK/state"

[coordination]
engine = "etcd"
endpoints = ["$ETCD"]
lease = "${LEASE}s"

[hosts.sa]
endpoint = "http://127.0.0.1:$PA"
credentials = "$WORK/a.cred"
[hosts.sb]
endpoint = "http://127.0.0.1:$PB"
credentials = "$WORK/b.cred"

[[cluster]]
name = "shared"
persist_path = "$WORK/persist"
settle = "1s"
poll = "1s"
coordination = "etcd"
volumes = [
  { at = "sa:shared", listen = true, update = true },
  { at = "sb:shared", listen = true, update = true },
]
EOF
echo "== $SMALL objects on site a, three instances, lease ${LEASE}s, $KILLS kills"
unset AWS_CA_BUNDLE
python3 - "$FERRY" "$WORK" "$LEASE" "$KILLS" "$SMALL" <<'PYEOF'
import json, os, re, signal, statistics, subprocess, sys, time
ferry, work, lease, kills, small = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg, log_path = f"{work}/ferry.toml", f"{work}/persist/log"
procs = {}
def spawn():
    p = subprocess.Popen([ferry, "-c", cfg, "cluster", "run", "shared"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(f"{work}/stderr", "a"))
    procs[p.pid] = p
def workers():
    try:
        text = open(log_path).read()
    except FileNotFoundError:
        return []
    return [(int(e), int(p)) for e, p in re.findall(r"working the cluster \(epoch (\d+)\) \(pid (\d+)\)", text)]
def wait(pred, limit, what):
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() - t0 > limit:
            tail = lambda p: open(p).read()[-3000:] if os.path.exists(p) else "(none)"
            sys.exit(f"bench-failover: {what} did not happen within {limit} s\nlog: {tail(log_path)}\nstderr: {tail(work + '/stderr')}")
        time.sleep(0.01)
def report():
    try:
        return json.load(open(f"{work}/persist/status.json"))
    except (FileNotFoundError, ValueError):
        return None
def cycled_since(pid, t_ms):
    r = report()
    return r and r["pid"] == pid and r["figures"]["last_cycle_ms"] > t_ms
for _ in range(3):
    spawn()
wait(lambda: len(workers()) == 1, 30, "a first worker")
# the first worker journals and copies every object before the kills start
def synced():
    r = report()
    return r and r["figures"]["journaled"] >= small and r["figures"]["applied"] >= small
wait(synced, 600, f"the first {small} objects copied")
takeover, resumed = [], []
for i in range(kills):
    n = len(workers())
    epoch, pid = workers()[-1]
    time.sleep(0.5 + (i * 0.37) % 1.5)
    t_kill, wall_ms = time.monotonic(), time.time() * 1000
    os.kill(pid, signal.SIGKILL)
    procs.pop(pid).wait()
    e2, p2 = wait(lambda: len(workers()) > n and workers()[-1], 10 * lease, "a takeover")
    takeover.append(time.monotonic() - t_kill)
    wait(lambda: cycled_since(p2, wall_ms), 10 * lease, "a cycle of the new worker")
    resumed.append(time.monotonic() - t_kill)
    assert e2 > epoch and p2 != pid
    spawn()
for p in procs.values():
    p.send_signal(signal.SIGTERM)
for p in procs.values():
    p.wait()
def line(name, xs):
    print(f"{name:9} min {min(xs):5.2f} s  median {statistics.median(xs):5.2f} s  max {max(xs):5.2f} s"
          f"   max/lease {max(xs) / lease:4.2f}")
print(f"lease {lease:.0f} s, {kills} kills of the working instance (3 instances, etcd on loopback):")
line("takeover", takeover)
line("resumed", resumed)
print(f"target: takeover <= 2 x lease: {'met' if max(takeover) <= 2 * lease else 'MISSED'}")
PYEOF
