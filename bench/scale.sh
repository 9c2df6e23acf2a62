#!/usr/bin/env bash
# Scale mode: times every list query shape on catalogues of N images, on glance-host,
# on real Spin and on the reference Glance (a measurement, not a test).
# For each N in SIZES:
#   1. the catalogue: bench/scale_fill.py generates N images (plus N/20 deleted
#      tombstones) with owners, visibilities, members, properties and tags spread as
#      a real cloud's (see its header), and bulk-INSERTs them with Python's sqlite3
#      (one transaction) into an empty database whose schema the service itself
#      created: the first target started once on a fresh state dir and answered
#      GET /v2/images (migrations run on first use), then stopped. Only `images` and
#      `image_members` are written; what the schema derives from them is its own
#      business. No ANALYZE.
#   2. each target starts on a fresh state dir holding a copy of that database
#      (`sqlite_db.db`, the default database of both runtimes) and glance-bench
#      --queries sends each shape (bench/scale_fill.py writes them, values taken from
#      the catalogue so every shape finds an image) over one keep-alive connection:
#      WARMUP untimed, then REPS timed (fewer once a shape has run MAX_SECONDS, at
#      least 10); p50, p90, p99 in ms. The caller is a member of "project-05" (which
#      owns public, private and shared images and is a member of others' shares);
#      two shapes as an admin of another project.
#   3. the reference Glance 33 (../shared/reference-glance, MODE=trusted, the same
#      identity headers plus X-Identity-Status) for N in REFERENCE_SIZES: its own
#      schema from `glance-manage db_sync`, filled the same way with the same
#      catalogue (its tables images, image_properties, image_tags, image_members,
#      image_locations). gunicorn's sync workers close every connection, so its
#      figures include a new loopback connection per request.
# At the end a markdown table per target: shape x N -> p50 / p90 / p99 ms, and the
# growth of p50 (a factor) from each N to the next (1k -> 10k, 10k -> 100k, ...);
# then p50 side by side. Shapes that found no image or had errors are listed.
# Options: SIZES ("1000 10000 100000"; add 1000000 for a million), REFERENCE_SIZES
#   (those of SIZES <= 10000), REPS (200), WARMUP (5), MAX_SECONDS (15), SEED (1),
#   SKIP_HOST=1, SKIP_SPIN=1, SKIP_REFERENCE=1, SPIN_BIN (../shared/spin/spin),
#   REFERENCE_DIR (/tmp/bench-scale-reference-glance), NO_BUILD=1 (use what is built),
#   BENCH_BIN (target/release/glance-bench),
#   RESULTS (a file to keep the raw rows and the tables in).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sizes=${SIZES:-1000 10000 100000}
if [ -z "${REFERENCE_SIZES+x}" ]; then
  ref_sizes=""
  for n in $sizes; do [ "$n" -le 10000 ] && ref_sizes="$ref_sizes $n"; done
else
  ref_sizes=$REFERENCE_SIZES
fi
reps=${REPS:-200}
warmup=${WARMUP:-5}
max_secs=${MAX_SECONDS:-15}
seed=${SEED:-1}
spin_bin=${SPIN_BIN:-$root/../shared/spin/spin}
work=$(mktemp -d /tmp/glance-scale.XXXXXX)
rows="$work/rows.txt"
notes="$work/notes.txt"
: >"$rows"
: >"$notes"
pids=()
groups=()
ref_dir=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  if [ -n "$ref_dir" ]; then bash "$root/../shared/reference-glance/stop.sh" "$ref_dir" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${NO_BUILD:-}" ]; then
  cargo build --release --target wasm32-wasip2 -p glance-images -p glance-members -p glance-schemas >&2
  cargo build --release -p glance-host -p glance-bench >&2
fi
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
bench=${BENCH_BIN:-$target/release/glance-bench}
fill="$root/bench/scale_fill.py"
read -r member_project admin_project < <(python3 "$fill" --caller)
member=(--header "X-Project-Id: $member_project" --header "X-User-Id: bench-user" --header "X-Roles: member,reader")
admin=(--header "X-Project-Id: $admin_project" --header "X-User-Id: bench-admin" --header "X-Roles: admin,member,reader")

# free_port: a loopback port nobody listens on (a fixed one may be another
# engineer's server, which would then be measured instead).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_up() {
  local n=$(($2 * 10))
  for _ in $(seq "$n"); do curl -fs -o /dev/null "$1/versions" && return 0; sleep 0.1; done
  echo "$1 did not answer GET /versions within $2 s" >&2
  return 1
}

# state NAME [DB]: a fresh state dir with the runtime config both runtimes read, and
# DB copied in as its default SQLite database.
state() {
  local s="$work/$1"
  rm -rf "$s"
  mkdir -p "$s"
  printf '[key_value_store.image_data]\ntype = "spin"\npath = "%s/image_data.db"\n[key_value_store.image_cache]\ntype = "spin"\npath = "%s/image_cache.db"\n' "$s" "$s" >"$s/rc.toml"
  if [ -n "${2:-}" ]; then cp "$2" "$s/sqlite_db.db"; fi
  echo "$s"
}

# start TARGET DIR PORT: glance-host or real Spin on DIR; sets $up_pid.
start() {
  local t=$1 s=$2 port=$3
  if [ "$t" = glance-host ]; then
    "$target/release/glance-host" up --from "$root/spin.toml" --listen "127.0.0.1:$port" \
      --state-dir "$s" --runtime-config-file "$s/rc.toml" >"$s/log" 2>&1 &
    up_pid=$!
    pids+=("$up_pid")
  else
    # Not a group leader here, so setsid execs spin itself: $! is spin up's pid and group.
    setsid "$spin_bin" up --from "$root/spin.toml" --listen "127.0.0.1:$port" \
      --state-dir "$s" --runtime-config-file "$s/rc.toml" >"$s/log" 2>&1 &
    up_pid=$!
    groups+=("$up_pid")
  fi
  wait_up "http://127.0.0.1:$port" 180 || { tail -20 "$s/log" >&2; exit 1; }
  kill -0 "$up_pid" 2>/dev/null || { echo "$t exited; another server answers on $port" >&2; exit 1; }
}

# stop TARGET: stops what start started and waits for it (SQLite checkpoints its WAL).
stop() {
  if [ "$1" = glance-host ]; then kill "$up_pid" 2>/dev/null || true; else kill -TERM -- "-$up_pid" 2>/dev/null || true; fi
  wait "$up_pid" 2>/dev/null || true
}

# measure N LABEL URL QUERIES_DIR [--header ...]: both query files; rows get N in front.
measure() {
  local n=$1 label=$2 url=$3 qdir=$4
  shift 4
  local extra=("$@")
  echo "$label N=$n: load average before measuring $(cut -d' ' -f1-3 /proc/loadavg)" >>"$notes"
  for who in member admin; do
    local -n hdr=$who
    echo "== $label, N=$n: $who queries" >&2
    "$bench" --endpoint "$url" --label "$label" "${hdr[@]}" "${extra[@]}" --queries "$qdir/$who.tsv" \
      --reps "$reps" --warmup "$warmup" --max-seconds "$max_secs" |
      while IFS= read -r line; do
        echo "$line" >&2
        case $line in target*) continue ;; esac # the header
        echo "$n $line" >>"$rows"
      done
  done
}

targets=()
[ -z "${SKIP_HOST:-}" ] && targets+=(glance-host)
if [ -z "${SKIP_SPIN:-}" ]; then
  if [ -x "$spin_bin" ]; then targets+=(spin); else echo "(no Spin at $spin_bin: set SPIN_BIN; spin rows skipped)" | tee -a "$notes"; fi
fi

if [ ${#targets[@]} -gt 0 ]; then
  # The schema, as the service creates it on first use.
  s=$(state schema)
  port=$(free_port)
  start "${targets[0]}" "$s" "$port"
  curl -fs -o /dev/null "${member[@]/--header/-H}" "http://127.0.0.1:$port/v2/images"
  stop "${targets[0]}"
  [ -f "$s/sqlite_db.db" ] || { echo "no $s/sqlite_db.db after the first request: $(ls "$s")" >&2; exit 1; }
  cp "$s/sqlite_db.db" "$work/empty.db"
  rm -rf "$s"
  for n in $sizes; do
    db="$work/glance-$n.db"
    cp "$work/empty.db" "$db"
    python3 "$fill" --kind glance --db "$db" --n "$n" --seed "$seed" --queries-out "$work/q-$n" 2>&1 | tee -a "$notes"
    for t in "${targets[@]}"; do
      s=$(state "$t-$n" "$db")
      port=$(free_port)
      start "$t" "$s" "$port"
      measure "$n" "$t" "http://127.0.0.1:$port" "$work/q-$n"
      stop "$t"
      # The target opened the database we gave it, not one of its own.
      dbs=$(cd "$s" && ls ./*.db | tr '\n' ' ')
      echo "$t N=$n: state dir holds $dbs" >>"$notes"
      rm -rf "$s"
    done
    rm -f "$db"
  done
fi

if [ -z "${SKIP_REFERENCE:-}" ] && [ -n "${ref_sizes// /}" ]; then
  if [ -d "$root/../shared/reference-glance" ]; then
    rd=${REFERENCE_DIR:-/tmp/bench-scale-reference-glance}
    bash "$root/../shared/reference-glance/stop.sh" "$rd" 2>/dev/null || true
    rm -rf "$rd/glance.sqlite" "$rd/images"
    MODE=trusted bash "$root/../shared/reference-glance/setup.sh" "$rd" >&2
    cp "$rd/glance.sqlite" "$work/ref-empty.sqlite"
    echo "reference-glance: bulk-filled through SQL into its own tables (images, image_properties, image_tags, image_members, image_locations), same catalogue" >>"$notes"
    for n in $ref_sizes; do
      cp "$work/ref-empty.sqlite" "$rd/glance.sqlite"
      python3 "$fill" --kind reference --db "$rd/glance.sqlite" --data-dir "$rd/images" --n "$n" \
        --seed "$seed" --queries-out "$work/qr-$n" 2>&1 | tee -a "$notes"
      ref_dir=$rd
      port=$(free_port)
      PORT=$port bash "$root/../shared/reference-glance/start.sh" "$rd" >/dev/null
      sleep 1
      kill -0 "$(cat "$rd/glance.pid")" 2>/dev/null || { echo "reference Glance exited; see $rd/glance.log" >&2; exit 1; }
      measure "$n" reference-glance "http://127.0.0.1:$port" "$work/qr-$n" --header "X-Identity-Status: Confirmed"
      bash "$root/../shared/reference-glance/stop.sh" "$rd" || true
      ref_dir=""
    done
  else
    echo "(no ../shared/reference-glance: reference rows skipped)" | tee -a "$notes"
  fi
fi

tables() {
  python3 - "$rows" "$reps" <<'PY'
import sys
rows, targets, sizes, shapes = {}, [], [], []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 10:
        continue
    n, t, q = int(f[0]), f[1], f[2]
    for lst, v in ((targets, t), (sizes, n), (shapes, q)):
        if v not in lst:
            lst.append(v)
    rows[(t, n, q)] = dict(p50=float(f[3]), p90=float(f[4]), p99=float(f[5]),
                           reps=int(f[6]), errors=int(f[7]), images=f[8], page=f[9])
sizes.sort()
order = ["glance-host", "spin", "reference-glance"]
targets.sort(key=lambda t: order.index(t) if t in order else len(order))
def human(n):
    return f"{n // 1000000}M" if n >= 1000000 and n % 1000000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)
def ms(v):
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"
for t in targets:
    ns = [n for n in sizes if any((t, n, q) in rows for q in shapes)]
    grows = list(zip(ns, ns[1:]))
    print(f"\n### {t}: p50 / p90 / p99 ms (limit=25, one keep-alive connection)\n")
    head = ["shape"] + [f"N={human(n)}" for n in ns]
    head += [f"p50 ×, {human(a)}→{human(b)}" for a, b in grows]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for q in shapes:
        cells = [q]
        for n in ns:
            r = rows.get((t, n, q))
            cells.append("-" if r is None else f"{ms(r['p50'])} / {ms(r['p90'])} / {ms(r['p99'])}")
        for na, nb in grows:
            a, b = rows.get((t, na, q)), rows.get((t, nb, q))
            cells.append("-" if not a or not b or not a["p50"] else f"{b['p50'] / a['p50']:.1f}")
        print("| " + " | ".join(cells) + " |")
print("\n### p50 ms side by side\n")
cols = [(t, n) for n in sizes for t in targets if any((t, n, q) in rows for q in shapes)]
short = {"glance-host": "host", "spin": "spin", "reference-glance": "glance"}
print("| shape | " + " | ".join(f"{short.get(t, t)} {human(n)}" for t, n in cols) + " |")
print("|" + "---|" * (len(cols) + 1))
for q in shapes:
    print(f"| {q} | " + " | ".join("-" if (t, n, q) not in rows else ms(rows[(t, n, q)]["p50"]) for t, n in cols) + " |")
# The same catalogue and caller everywhere: one shape's first page at one N
# should be the same images in the same order on every target.
differ = []
for n in sizes:
    for q in shapes:
        seen = {short.get(t, t): rows[(t, n, q)]["images"] + " " + rows[(t, n, q)]["page"]
                for t in targets if (t, n, q) in rows}
        if len(set(seen.values())) > 1:
            differ.append(f"N={human(n)} {q} (" + ", ".join(f"{t} {v}" for t, v in seen.items()) + ")")
if differ:
    print("\nFirst pages that differ between targets (images, digest of the ids in order): " + "; ".join(differ))
bad = [(k, r) for k, r in rows.items() if r["errors"] or r["images"] in ("0", "-")]
if bad:
    print()
for (t, n, q), r in bad:
    print(f"!! {t} N={human(n)} {q}: {r['errors']} errors, {r['images']} images on the first page")
short_reps = [(k, r["reps"]) for k, r in rows.items() if r["reps"] < int(sys.argv[2])]
if short_reps:
    print("\n(fewer repetitions, MAX_SECONDS reached: " + ", ".join(f"{t} {human(n)} {q} {c}" for (t, n, q), c in short_reps) + ")")
PY
}
{
  echo
  echo "== notes"
  cat "$notes"
  tables
} | tee "$work/tables.md"
if [ -n "${RESULTS:-}" ]; then cat "$rows" "$work/tables.md" >"$RESULTS"; fi
