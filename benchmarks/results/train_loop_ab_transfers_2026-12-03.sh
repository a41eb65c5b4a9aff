#!/bin/bash
# A/B of the train loop's images/s: old code (452064c, one transfer per step) vs new (chunks), interleaved.
export JAXGAN_MNIST_DIR=/work/shared/data/mnist JAX_PLATFORMS=cpu
out=/tmp/s5/ab; mkdir -p $out
for round in 1 2 3; do
  for code in old new; do
    src=/work/main; [ $code = old ] && src=/tmp/s5/old
    for exp in ring8 dcgan_mnist; do
      if [ $exp = ring8 ]; then extra="--set train.total_kimg=1200 --set log_every_steps=500"; else extra="--set train.total_kimg=16 --set log_every_steps=40"; fi
      wd=$out/$exp-$code-$round; rm -rf $wd
      (cd /tmp && PYTHONPATH=$src python -m jaxgan.cli train $exp --workdir $wd $extra --set sample_every_steps=100000 --set checkpoint_every_steps=100000 --set eval.num_samples=64 --set eval.classifier_steps=10 > $wd.log 2>&1)
      python - "$wd" "$exp" "$code" "$round" <<'PY'
import json, sys, statistics, pathlib
wd, exp, code, rnd = sys.argv[1:]
rows = [json.loads(l) for l in (pathlib.Path(wd) / "metrics.jsonl").read_text().splitlines() if l.strip()]
ips = [r["images_per_sec"] for r in rows if "images_per_sec" in r][1:]
wf = [r.get("input/wait_fraction") for r in rows if "input/wait_fraction" in r][1:]
print(json.dumps({"exp": exp, "code": code, "round": int(rnd), "images_per_sec_median": statistics.median(ips), "n": len(ips), "wait_fraction_median": statistics.median(wf) if wf else None}))
PY
    done
  done
done
