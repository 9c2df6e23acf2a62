#!/usr/bin/env bash
# Measures this service and the reference Glance side by side (not a test):
#   1. metadata: create, show, list (1000 images present), update at concurrency 1 and 16;
#   2. data: upload and download of 256 MiB at concurrency 1 and 4, for the kv
#      store, the s3 store (moto from the test venv, if installed) and the reference;
#   3. edge: an edge site (upstream_glance_url, image cache) of the s3 instance (the
#      kv one without moto): a direct central download, an edge cache miss, an edge
#      cache hit, MiB/s, in the same run.
# Options: SECONDS_PER_OP (5), DATA_SIZE (268435456), ROUNDS (2), GLANCE_ONLY=1 (skip
# the reference), SKIP_DATA=1, SKIP_META=1. The reference is ../shared/reference-glance.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${SECONDS_PER_OP:-5}
size=${DATA_SIZE:-268435456}
rounds=${ROUNDS:-2}
work=$(mktemp -d /tmp/glance-bench.XXXXXX)
pids=()
ref_dir=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$ref_dir" ]; then bash "$root/../shared/reference-glance/stop.sh" "$ref_dir" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --target wasm32-wasip2 -p glance-images -p glance-members -p glance-schemas >&2
cargo build --release -p glance-host -p glance-bench >&2
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
bench="$target/release/glance-bench"

wait_up() { for _ in $(seq 200); do curl -fs -o /dev/null "$1/versions" && return 0; sleep 0.1; done; echo "$1 did not start" >&2; return 1; }

# start_edge PORT NAME [VAR=VALUE...]: glance-host with its own state dir.
start_edge() {
  local port=$1 name=$2; shift 2
  local state="$work/$name"; mkdir -p "$state"
  printf '[key_value_store.image_data]\ntype = "spin"\npath = "%s/image_data.db"\n[key_value_store.image_cache]\ntype = "spin"\npath = "%s/image_cache.db"\n' "$state" "$state" >"$state/rc.toml"
  env "$@" "$target/release/glance-host" up --from "$root/spin.toml" --listen "127.0.0.1:$port" \
    --state-dir "$state" --runtime-config-file "$state/rc.toml" >"$state/host.log" 2>&1 &
  pids+=($!)
  wait_up "http://127.0.0.1:$port"
}

edge_headers=(--header "X-Project-Id: bench-$$" --header "X-Roles: admin,member,reader")
start_edge 3100 kv

ref=""
if [ -z "${GLANCE_ONLY:-}" ] && [ -d "$root/../shared/reference-glance" ]; then
  ref_dir=${REFERENCE_DIR:-/tmp/bench-reference-glance}
  rm -rf "$ref_dir/glance.sqlite" "$ref_dir/images"
  bash "$root/../shared/reference-glance/setup.sh" "$ref_dir" >&2
  PORT=9392 bash "$root/../shared/reference-glance/start.sh" "$ref_dir" >/dev/null
  ref=http://127.0.0.1:9392
fi

if [ -z "${SKIP_META:-}" ]; then
  echo "== metadata (${secs}s per row)"
  "$bench" --endpoint http://127.0.0.1:3100 --label glance-edge "${edge_headers[@]}" --seconds "$secs" | tee "$work/edge-meta.txt"
  if [ -n "$ref" ]; then
    "$bench" --endpoint "$ref" --label reference-glance --seconds "$secs" | tail -n +2 | tee "$work/ref-meta.txt"
  fi
fi

if [ -z "${SKIP_DATA:-}" ]; then
  echo "== data ($size bytes, $rounds rounds per worker)"
  data=(--ops upload,download --concurrency 1,4 --size "$size" --rounds "$rounds")
  "$bench" --endpoint http://127.0.0.1:3100 --label glance-edge-kv "${edge_headers[@]}" "${data[@]}" | tail -n +2
  moto="${GLANCE_TEST_CACHE:-$HOME/.cache/glance-edge}"/venv-*/bin/moto_server
  moto=$(ls $moto 2>/dev/null | head -1 || true)
  if [ -n "$moto" ]; then
    "$moto" -H 127.0.0.1 -p 9556 >"$work/moto.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do curl -fs -o /dev/null -X PUT http://127.0.0.1:9556/bench && break; sleep 0.1; done
    start_edge 3101 s3 SPIN_VARIABLE_STORES=kv,s3 SPIN_VARIABLE_DEFAULT_STORE=s3 \
      SPIN_VARIABLE_S3_ENDPOINT=http://127.0.0.1:9556 SPIN_VARIABLE_S3_BUCKET=bench \
      SPIN_VARIABLE_S3_ACCESS_KEY=bench SPIN_VARIABLE_S3_SECRET_KEY=bench
    "$bench" --endpoint http://127.0.0.1:3101 --label glance-edge-s3 "${edge_headers[@]}" "${data[@]}" | tail -n +2
  else
    echo "(no moto_server in the test venv: run the tests once to install it; s3 rows skipped)"
  fi
  if [ -n "$ref" ]; then
    "$bench" --endpoint "$ref" --label reference-glance "${data[@]}" | tail -n +2
  fi
  central=http://127.0.0.1:3100
  if [ -n "$moto" ]; then central=http://127.0.0.1:3101; fi
  echo "== edge site of $central ($size bytes)"
  start_edge 3102 edge SPIN_VARIABLE_UPSTREAM_GLANCE_URL=$central SPIN_VARIABLE_IMAGE_CACHE_MAX_SIZE=8GB
  "$bench" --endpoint http://127.0.0.1:3102 --upstream "$central" --label glance-edge-site "${edge_headers[@]}" \
    --ops central,edge-miss,edge-hit --size "$size" --rounds "$rounds" --seconds "$secs" | tail -n +2
fi
