#!/usr/bin/env bash
# The accelerator measurements that BENCHMARKS.md (issue 11) and docs/results.md (issue 8) wait for,
# each part sized to fit one call of a lent GPU machine (10 minutes a command, 30 minutes a session).
#
#   bash benchmarks/gpu_session.sh prepare          # here, before the call: MNIST into .gpu_data/
#   bash benchmarks/gpu_session.sh bench OUTDIR     # on the GPU: the step benchmarks, about 8 min (limits add to 9)
#   bash benchmarks/gpu_session.sh train OUTDIR     # on the GPU: StyleGAN2 on MNIST, 6 min of training + eval (limits add to 9.5)
#   bash benchmarks/gpu_session.sh unpack OUTDIR    # here, after the call: the train part's workdir
#                                                   # (no checkpoint) back in runs/gpu_stylegan2_mnist and
#                                                   # its 10k samples through the Inception FID here
#
# With the device tool: run(command="bash benchmarks/gpu_session.sh bench $OUT", carry=[".gpu_data"]).
# The GPU image has jax, flax, optax, orbax and torch but not tensorflow-datasets or tensorboardX,
# and no network: jaxgan runs from the checkout (PYTHONPATH), not installed. SMOKE=1 runs every
# command at tiny sizes, to check the script on a CPU. Every command has its own time limit and a
# failing one does not stop the rest; the last lines printed are the JSON records as a Markdown table.
set -uo pipefail

part=${1:?usage: gpu_session.sh prepare|bench|train|unpack [OUTDIR]}
out=${2:-${OUT:-/tmp/jaxgan_gpu}}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export JAXGAN_MNIST_DIR=.gpu_data/mnist  # relative: the workdir's config then resolves on both machines
smoke=${SMOKE:-0}
py=${PYTHON:-python3}

jg=("$py" -c 'import sys; from jaxgan.cli import main; sys.exit(main(sys.argv[1:]))')  # `jaxgan`, uninstalled

# step NAME SECONDS COMMAND...: runs one command under a time limit, its log in OUTDIR/NAME.log
step() {
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout -s TERM -k 20 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: rc $rc, $((SECONDS - t0)) s"; tail -n 6 "$out/$name.log"
}

case $part in
prepare)
  src=${3:-../shared/data/mnist}
  mkdir -p .gpu_data/mnist && cp "$src"/t10k-* .gpu_data/mnist/ && ls -la .gpu_data/mnist
  exit ;;
unpack)
  # the Inception weights (87 MB) cannot travel to the GPU machine (64 MiB a call), so its samples
  # come back (as uint8, 16 MiB a file) and are measured here
  mkdir -p runs && tar -xzf "$out/workdir.tar.gz" -C runs || exit 1
  "$py" -c 'import sys, numpy as np; x = np.load(sys.argv[1])["x"]; np.save(sys.argv[2], x.astype(np.float32) / 127.5 - 1)' \
      "$out/samples10k_uint8.npz" runs/gpu_stylegan2_mnist/samples10k.npy || exit 1
  "${jg[@]}" eval runs/gpu_stylegan2_mnist --samples runs/gpu_stylegan2_mnist/samples10k.npy \
      --set eval.inception_weights="${INCEPTION:-$HOME/.cache/jaxgan/inception_fid_nvidia.npz}" \
      | tee runs/gpu_stylegan2_mnist/eval_inception10k.json
  exit ;;
esac

mkdir -p "$out"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv
  "$py" -c 'import jax, jaxlib, flax, optax, sys; print(sys.version); print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "flax", flax.__version__, "optax", optax.__version__); print(jax.devices())'
  "$py" -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

if [ "$smoke" = 1 ]; then
  # CPU check: tiny networks, no torch.compile (inductor's C++ build takes minutes on a CPU), no widening
  S=(--smoke --steps 1 --windows 1); B128=(); B512=(); TRAIN_S=120; TC=; WIDE=()
else
  S=(--steps 20 --windows 5); B128=(--batch 128); B512=(--batch 512); TRAIN_S=${TRAIN_S:-330}
  TC=torch-compile,; WIDE=(--set model.channel_base=8192 --set model.channel_max=256)
fi
J="$out/bench.jsonl"

case $part in
bench)
  # PyTorch runs in the same process as JAX, which would otherwise take 75% of the GPU's memory up front
  export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
  # the dense-peak table's MFU, and a measured bf16 matmul peak beside it
  step peak 40 "$py" -c 'import jax; from jaxgan.bench import measured_matmul_peak as m; d = jax.devices()[0]; print(d.device_kind, "bf16 matmul TFLOP/s:", m("bfloat16", d, n=8192 if d.platform == "gpu" else 512))'
  # issue 11's goals: DCGAN-64 bf16 at batch 128 and 512 against the hand-written step and PyTorch
  # (eager, torch.compile, channels-last; bf16 autocast and fused Adam on GPU), and the shared G pass
  step dcgan64_b128 180 "${jg[@]}" bench dcgan64 --dtype bfloat16 "${B128[@]}" "${S[@]}" --json "$J" \
      --compare handwritten,torch,${TC}torch-channels-last,jaxgan-shared-pass
  step dcgan64_b512 120 "${jg[@]}" bench dcgan64 --dtype bfloat16 "${B512[@]}" "${S[@]}" --json "$J" \
      --compare handwritten,torch,torch-channels-last,jaxgan-shared-pass
  # the largest family's MFU (StyleGAN2 at 64x64, ADA's widths), and the widened MNIST model trained below
  step stylegan2_ffhq64 80 "${jg[@]}" bench stylegan2_ffhq64 --dtype bfloat16 "${S[@]}" --json "$J" --no-compile-timing
  # the up-sampling layers filter first (CPU's form) against NVIDIA's order (auto on GPU): which wins on GPU
  step stylegan2_ffhq64_filter 80 "${jg[@]}" bench stylegan2_ffhq64 --dtype bfloat16 "${S[@]}" --json "$J" \
      --no-compile-timing --set model.upsample=filter
  step stylegan2_mnist 60 "${jg[@]}" bench stylegan2_mnist --dtype bfloat16 "${S[@]}" --json "$J" --no-compile-timing "${WIDE[@]}"
  step dcgan_mnist 50 "${jg[@]}" bench dcgan_mnist --dtype bfloat16 "${B512[@]}" "${S[@]}" --json "$J" --compare handwritten,torch
  step ring8 40 "${jg[@]}" bench ring8 "${S[@]}" --json "$J" --compare handwritten,torch
  ;;
train)
  # issue 8: a longer StyleGAN2 run on the GPU (widened as the experiment's docstring says), stopped
  # by SIGTERM (the runner saves a checkpoint and exits; the step reports timeout's rc 124), then
  # evaluated with the digit classifier
  w=runs/gpu_stylegan2_mnist
  rm -rf "$w"
  sets=("${WIDE[@]}" --set train.total_kimg=100000 --set keep_checkpoints=1 --set checkpoint_every_steps=5000)
  [ "$smoke" = 1 ] && sets+=(--smoke)
  step train $((TRAIN_S + 60)) timeout -s TERM "$TRAIN_S" "${jg[@]}" \
      train stylegan2_mnist --workdir "$w" "${sets[@]}"
  step eval 120 "${jg[@]}" eval "$w"
  # 10k samples of the EMA generator, drawn as eval draws them, as uint8 for `unpack`, quantised by
  # the Inception path's own to_pixels (StyleGAN2-ADA's rule), so that u / 127.5 - 1 gives it the same
  # pixels back; the workdir without its checkpoint (too large to return)
  n=10000; [ "$smoke" = 1 ] && n=64
  seed=$("$py" -c 'from jaxgan.evaluate import EVAL_SEED; print(EVAL_SEED)')
  step sample 60 "${jg[@]}" sample "$w" --n $n --seed "$seed" --out "$w/samples10k.npy"
  "$py" -c 'import sys, numpy as np; from jaxgan.eval.inception import to_pixels; np.savez_compressed(sys.argv[2], x=np.asarray(to_pixels(np.load(sys.argv[1]))).astype(np.uint8))' \
      "$w/samples10k.npy" "$out/samples10k_uint8.npz"
  ls "$w"/samples | sort -V | tail -n 1 | while read -r f; do cp "$w/samples/$f" "$out/last_grid.png"; done
  tar -czf "$out/workdir.tar.gz" -C runs --exclude=checkpoints --exclude=samples10k.npy gpu_stylegan2_mnist
  ls -la "$out"
  ;;
*) echo "unknown part $part"; exit 2 ;;
esac

echo "=== summary"
# the records as the Markdown table BENCHMARKS.md takes (also in OUTDIR/bench_table.md)
[ -f "$J" ] && "${jg[@]}" bench --table "$J" --markdown | tee "$out/bench_table.md"
exit 0
