#!/usr/bin/env bash
# XLA CPU options against jaxgan's dcgan_mnist step (float32, batch 64, synthetic data), one process
# per setting (XLA_FLAGS is read once, when jax starts). Appends to benchmarks/results/cpu_flags.jsonl
# and prints one line per setting. Usage: bash benchmarks/xla_cpu_flags.sh [EXPERIMENT]
set -u
EXP=${1:-dcgan_mnist}
OUT=benchmarks/results/cpu_flags.jsonl
SETTINGS=(
  ""
  "--xla_cpu_use_onednn=true"
  "--xla_cpu_experimental_onednn_custom_call=true"
  "--xla_cpu_use_xnnpack=true"
  "--xla_cpu_multi_thread_eigen=false"
  "--xla_cpu_enable_fast_math=true"
  "--xla_cpu_use_thunk_runtime=false"
)
for flags in "${SETTINGS[@]}"; do
  tmp=$(mktemp)
  if XLA_FLAGS="$flags" nice -n 10 python -m jaxgan.cli bench "$EXP" --batch 64 --dtype float32 \
      --steps 3 --windows 3 --no-compile-timing --peak 1 --json "$tmp" > /dev/null 2> "$tmp.err"; then
    python - "$tmp" "$flags" >> "$OUT" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[0]); r["xla_flags"] = sys.argv[2]
print(json.dumps(r))
PY
    tail -1 "$OUT" | python -c "import json,sys; r=json.load(sys.stdin); print(repr(r['xla_flags']), round(r['step_ms']['median'],1), 'ms', round(r['images_per_sec'],1), 'img/s', 'compile', round(r['compile_s']['cold'],1), 's')"
  else
    echo "'$flags' failed: $(grep -v '^$' "$tmp.err" | tail -1)"
  fi
  rm -f "$tmp" "$tmp.err"
done
