#!/usr/bin/env bash
# Measures this service on glance-host and on real Spin, and the reference Glance,
# side by side in one run (a measurement, not a test):
#   1. metadata: create, show, list (1000 images present), update at concurrency 1 and 16
#      (ops/s, p50, p99);
#   2. data: upload and download of DATA_SIZE bytes at concurrency 1 and 4 (MiB/s).
# Targets, one at a time (each stopped and its state removed before the next starts):
#   glance-host  this repository's host, kv store;
#   spin         real Spin (spin up --from spin.toml, the same .wasm files), kv store;
#   glance-host-s3  glance-host with the s3 store on moto (data rows; only when the test
#                venv has moto_server, i.e. after the tests ran once);
#   reference-glance  ../shared/reference-glance (Glance 33, gunicorn, file store).
# Then a summary: every target's figures, and Spin/Glance (and glance-host/Glance) for
# the aims: list & show c1 ops/s >= 10x and p99 < 10 ms, create & update c16 p99 < 50 ms,
# upload c1 >= 1.5x, download c1 and c4 >= 1x.
# Options: SECONDS_PER_OP (5), DATA_SIZE (268435456), ROUNDS (2 uploads per worker),
#   SKIP_HOST=1, SKIP_SPIN=1, SKIP_S3=1, GLANCE_ONLY=1 (skip the reference), SKIP_META=1,
#   SKIP_DATA=1, SPIN_BIN (../shared/spin/spin), REFERENCE_DIR (/tmp/bench-reference-glance),
#   RESULTS (a file to keep the raw rows and the summary in).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${SECONDS_PER_OP:-5}
size=${DATA_SIZE:-268435456}
rounds=${ROUNDS:-2}
spin_bin=${SPIN_BIN:-$root/../shared/spin/spin}
work=$(mktemp -d /tmp/glance-bench.XXXXXX)
rows="$work/rows.txt"
: >"$rows"
pids=()   # processes to kill at exit
groups=() # process groups to kill at exit (spin up and its trigger child)
ref_dir=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  if [ -n "$ref_dir" ]; then bash "$root/../shared/reference-glance/stop.sh" "$ref_dir" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --target wasm32-wasip2 -p glance-images -p glance-members -p glance-schemas >&2
cargo build --release -p glance-host -p glance-bench >&2
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
bench="$target/release/glance-bench"
# spin.toml names target/wasm32-wasip2/release/*.wasm under the workspace root.
for w in glance_images glance_members glance_schemas; do
  [ -f "$root/target/wasm32-wasip2/release/$w.wasm" ] || {
    echo "$root/target/wasm32-wasip2/release/$w.wasm missing: spin.toml names it (with CARGO_TARGET_DIR elsewhere, link ./target to it)" >&2
    exit 1
  }
done

# wait_up URL SECONDS
wait_up() {
  local n=$(($2 * 10))
  for _ in $(seq "$n"); do curl -fs -o /dev/null "$1/versions" && return 0; sleep 0.1; done
  echo "$1 did not answer GET /versions within $2 s" >&2
  return 1
}

# state NAME: a fresh state dir with the runtime config both runtimes read.
state() {
  local s="$work/$1"
  mkdir -p "$s"
  printf '[key_value_store.image_data]\ntype = "spin"\npath = "%s/image_data.db"\n' "$s" >"$s/rc.toml"
  echo "$s"
}

# start_host PORT NAME [VAR=VALUE...]: glance-host with its own state dir; sets $up_pid.
start_host() {
  local port=$1 name=$2; shift 2
  local s; s=$(state "$name")
  env "$@" "$target/release/glance-host" up --from "$root/spin.toml" --listen "127.0.0.1:$port" \
    --state-dir "$s" --runtime-config-file "$s/rc.toml" >"$s/host.log" 2>&1 &
  up_pid=$!
  pids+=("$up_pid")
  wait_up "http://127.0.0.1:$port" 60 || { tail -20 "$s/host.log" >&2; exit 1; }
}

# start_spin PORT NAME: real Spin in a process group (session) of its own; sets $up_pid.
start_spin() {
  local port=$1 name=$2
  local s; s=$(state "$name")
  # Not a group leader here, so setsid execs spin itself: $! is spin up's pid and group.
  setsid "$spin_bin" up --from "$root/spin.toml" --listen "127.0.0.1:$port" \
    --state-dir "$s" --runtime-config-file "$s/rc.toml" >"$s/spin.log" 2>&1 &
  up_pid=$!
  groups+=("$up_pid")
  # A cold start compiles the components.
  wait_up "http://127.0.0.1:$port" 180 || { tail -20 "$s/spin.log" >&2; exit 1; }
}

# stop PID [group]: stops a target and waits for it.
stop() {
  if [ "${2:-}" = group ]; then kill -TERM -- "-$1" 2>/dev/null || true; else kill "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}

# measure LABEL URL [--header 'K: V'...]: the metadata and data rows of one target.
measure() {
  local label=$1 url=$2; shift 2
  if [ -z "${SKIP_META:-}" ]; then
    echo "== $label: metadata (${secs}s per row)"
    "$bench" --endpoint "$url" --label "$label" "$@" --seconds "$secs" | tail -n +2 | tee -a "$rows"
  fi
  measure_data "$label" "$url" "$@"
}

# measure_data LABEL URL [--header ...]: upload and download rows.
measure_data() {
  local label=$1 url=$2; shift 2
  if [ -z "${SKIP_DATA:-}" ]; then
    echo "== $label: data ($size bytes, $rounds uploads per worker)"
    "$bench" --endpoint "$url" --label "$label" "$@" --ops upload,download --concurrency 1,4 \
      --size "$size" --rounds "$rounds" --seconds "$secs" | tail -n +2 | tee -a "$rows"
  fi
}

printf '%-28s %-8s %5s %10s %9s %9s %8s %9s\n' target op conc ops/s "p50 ms" "p99 ms" errors MiB/s
edge_headers=(--header "X-Project-Id: bench-$$" --header "X-Roles: admin,member,reader")

if [ -z "${SKIP_HOST:-}" ]; then
  start_host 3100 host
  measure glance-host http://127.0.0.1:3100 "${edge_headers[@]}"
  stop "$up_pid"
  rm -rf "$work/host"
fi

if [ -z "${SKIP_SPIN:-}" ]; then
  if [ -x "$spin_bin" ]; then
    start_spin 3200 spin
    measure spin http://127.0.0.1:3200 "${edge_headers[@]}"
    stop "$up_pid" group
    rm -rf "$work/spin"
  else
    echo "(no Spin at $spin_bin: set SPIN_BIN; spin rows skipped)"
  fi
fi

if [ -z "${SKIP_S3:-}" ] && [ -z "${SKIP_HOST:-}" ] && [ -z "${SKIP_DATA:-}" ]; then
  moto="${GLANCE_TEST_CACHE:-$HOME/.cache/glance-edge}"/venv-*/bin/moto_server
  moto=$(ls $moto 2>/dev/null | head -1 || true)
  if [ -n "$moto" ]; then
    "$moto" -H 127.0.0.1 -p 9556 >"$work/moto.log" 2>&1 &
    moto_pid=$!
    pids+=("$moto_pid")
    for _ in $(seq 100); do curl -fs -o /dev/null -X PUT http://127.0.0.1:9556/bench && break; sleep 0.1; done
    start_host 3101 s3 SPIN_VARIABLE_STORES=kv,s3 SPIN_VARIABLE_DEFAULT_STORE=s3 \
      SPIN_VARIABLE_S3_ENDPOINT=http://127.0.0.1:9556 SPIN_VARIABLE_S3_BUCKET=bench \
      SPIN_VARIABLE_S3_ACCESS_KEY=bench SPIN_VARIABLE_S3_SECRET_KEY=bench
    measure_data glance-host-s3 http://127.0.0.1:3101 "${edge_headers[@]}"
    stop "$up_pid"
    stop "$moto_pid"
    rm -rf "$work/s3"
  else
    echo "(no moto_server in the test venv: run the tests once to install it; s3 rows skipped)"
  fi
fi

if [ -z "${GLANCE_ONLY:-}" ]; then
  if [ -d "$root/../shared/reference-glance" ]; then
    ref_dir=${REFERENCE_DIR:-/tmp/bench-reference-glance}
    rm -rf "$ref_dir/glance.sqlite" "$ref_dir/images"
    bash "$root/../shared/reference-glance/setup.sh" "$ref_dir" >&2
    PORT=9392 bash "$root/../shared/reference-glance/start.sh" "$ref_dir" >/dev/null
    measure reference-glance http://127.0.0.1:9392
    bash "$root/../shared/reference-glance/stop.sh" "$ref_dir" || true
    ref_dir=""
  else
    echo "(no ../shared/reference-glance: reference rows skipped)"
  fi
fi

summary() {
  python3 - "$rows" <<'PY'
import sys
rows = {}
targets = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 7:
        continue
    label, op, conc = f[0], f[1], int(f[2])
    if label not in targets:
        targets.append(label)
    rows[(label, op, conc)] = {
        "ops": float(f[3]), "p50": float(f[4]), "p99": float(f[5]), "errors": int(f[6]),
        "mib": float(f[7]) if len(f) > 7 else None,
    }
order = ["glance-host", "spin", "glance-host-s3", "reference-glance"]
targets = sorted(targets, key=lambda t: order.index(t) if t in order else len(order))
short = {"glance-host": "glance-host", "spin": "spin", "glance-host-s3": "host-s3",
         "reference-glance": "glance"}
def get(t, op, c, k):
    r = rows.get((t, op, c))
    return None if r is None else r[k]
def fmt(v, unit=""):
    if v is None:
        return "-"
    return f"{v:.1f}" if v >= 100 else f"{v:.2f}"

print()
print("== summary: figures (ops/s; p50, p99 in ms; MiB/s)")
print(f"{'':24}" + "".join(f"{short.get(t, t):>14}" for t in targets))
for op in ["create", "show", "list", "update"]:
    for c in [1, 16]:
        for k, name in [("ops", "ops/s"), ("p50", "p50"), ("p99", "p99")]:
            vals = [get(t, op, c, k) for t in targets]
            if all(v is None for v in vals):
                continue
            print(f"{op + ' c' + str(c) + ' ' + name:24}" + "".join(f"{fmt(v):>14}" for v in vals))
for op in ["upload", "download"]:
    for c in [1, 4]:
        vals = [get(t, op, c, "mib") for t in targets]
        if all(v is None for v in vals):
            continue
        print(f"{op + ' c' + str(c) + ' MiB/s':24}" + "".join(f"{fmt(v):>14}" for v in vals))
errs = [(k, r["errors"]) for k, r in rows.items() if r["errors"]]
for (t, op, c), n in errs:
    print(f"!! {t} {op} c{c}: {n} errors")

# The aims: (figure, op, conc, key, kind, bound); kind "ratio" is Spin/Glance >= bound,
# "below" is Spin's own figure < bound (ms).
aims = [
    ("list c1 ops/s", "list", 1, "ops", "ratio", 10),
    ("show c1 ops/s", "show", 1, "ops", "ratio", 10),
    ("list c1 p99 ms", "list", 1, "p99", "below", 10),
    ("show c1 p99 ms", "show", 1, "p99", "below", 10),
    ("create c16 p99 ms", "create", 16, "p99", "below", 50),
    ("update c16 p99 ms", "update", 16, "p99", "below", 50),
    ("upload c1 MiB/s", "upload", 1, "mib", "ratio", 1.5),
    ("download c1 MiB/s", "download", 1, "mib", "ratio", 1),
    ("download c4 MiB/s", "download", 4, "mib", "ratio", 1),
]
def ratio(a, b):
    return None if a is None or not b else a / b
print()
print("== summary: aims (ratios to the reference Glance; last two columns: aim met by spin, by glance-host)")
print(f"{'':20}{'glance-host':>12}{'spin':>10}{'glance':>10}{'spin/gl':>10}{'host/gl':>10}{'aim':>10}{'spin':>6}{'host':>6}")
for name, op, c, k, kind, bound in aims:
    h, s, g = (get(t, op, c, k) for t in ["glance-host", "spin", "reference-glance"])
    rs, rh = ratio(s, g), ratio(h, g)
    if kind == "ratio":
        aim = f">= {bound:g}x"
        met = lambda r: "-" if r is None else ("yes" if r >= bound else "no")
        ms, mh = met(rs), met(rh)
    else:
        aim = f"< {bound:g} ms"
        met = lambda v: "-" if v is None else ("yes" if v < bound else "no")
        ms, mh = met(s), met(h)
    rfmt = lambda r: "-" if r is None else f"{r:.2f}x"
    print(f"{name:20}{fmt(h):>12}{fmt(s):>10}{fmt(g):>10}{rfmt(rs):>10}{rfmt(rh):>10}{aim:>10}{ms:>6}{mh:>6}")
PY
}
summary | tee "$work/summary.txt"
if [ -n "${RESULTS:-}" ]; then cat "$rows" "$work/summary.txt" >"$RESULTS"; fi
