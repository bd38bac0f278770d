"""One prepared run for a lent GPU machine (one H100/H200, 16 cores, ≈8 minutes): generate
synthetic data on every core, train the BlazePose-backbone models in bf16 on the GPU,
evaluate them against the mean pose on a held-out set, and leave publishable weights and a
throughput line per model.

    python training/recipes/gpu_quick.py --out $OUT [--minutes 7] [--models hmr pymaf meshpose]
    python training/recipes/gpu_quick.py --out /tmp/smoke --smoke      # the same path on a CPU, tiny

Steps (each a subprocess of the project's own CLIs, so this script only orchestrates):

1. ``python -m core.data.synthetic`` with ``--workers`` = the machine's cores: a training set
   (seed 1) and a held-out set (seed 2);
2. per model, ``python -m training <method>`` with the CPU recipe's losses but the backbone
   fine-tuned (``optim.backbone_lr`` 1e-5), batch 128, ``--precision bf16-mixed``,
   ``--accelerator gpu``, max steps from the time share of that model;
3. ``python -m training.eval`` of the result and of ``--checkpoint mean``;
4. a line ``THROUGHPUT <model> <samples/s> samples/s`` (training steps × batch / seconds)
   and the metrics in ``$OUT/summary.json``. Publish with ``python -m training.publish``.

Not yet run on a GPU by the sessions so far (no GPU was lent); ``--smoke`` runs every step
on the CPU with tiny sizes and is what the test suite checks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPES = Path(__file__).resolve().parent

# model → (trainer method, CPU recipe whose model and losses it reuses, share of the time)
MODELS = {
    "hmr": ("hmr", "hmr_blazepose_cpu.yaml", 0.3),
    "pymaf": ("pymaf", "pymaf_blazepose_cpu.yaml", 0.45),
    "meshpose": ("meshpose", None, 0.25),
}


def _run(cmd: list[str], log: Path, env: dict) -> float:
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=7.0, help="total budget for the training runs")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--num", type=int, default=60000, help="training samples to generate")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (tests the path)")
    args = ap.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    py = sys.executable
    if args.smoke:
        num, held, batch, accel, precision, workers = 16, 8, 4, "cpu", "32", 0
    else:
        num, held, batch, accel, precision, workers = args.num, 1000, args.batch_size, "gpu", "bf16-mixed", 6

    # 1 · data on every core
    train_dir, val_dir = out / "data_train", out / "data_val"
    gen = [py, "-m", "core.data.synthetic", "--shard-size", str(min(500, num)), "--workers", str(max(1, cores))]
    t = _run(gen + ["--out", str(train_dir), "--num", str(num), "--seed", "1"], out / "gen_train.log", env)
    print(f"DATA {num} samples in {t:.0f} s ({num / t:.0f} samples/s on {cores} cores)", flush=True)
    _run(gen + ["--out", str(val_dir), "--num", str(held), "--seed", "2"], out / "gen_val.log", env)
    _run([py, "-m", "training.eval", "--checkpoint", "mean", "--data", f"synthetic:{val_dir}", "--out",
          str(out / "eval_mean"), "--no-render"], out / "eval_mean.log", env)

    # 2–4 · train, evaluate, report per model
    summary = {"cores": cores, "smoke": args.smoke}
    share = sum(MODELS[m][2] for m in args.models)
    for name in args.models:
        method, recipe, frac = MODELS[name]
        budget_s = 60.0 * args.minutes * frac / share
        run_dir = out / name
        cmd = [py, "-m", "training", method, "--data", f"synthetic:{train_dir}", "--out", str(run_dir),
               "--accelerator", accel, "--devices", "1", "--precision", precision, "--batch-size", str(batch)]
        if recipe:
            cmd += ["--config", str(RECIPES / recipe)]
        else:
            cmd += ["--set", f"model.name={name}_blazepose"]
        steps = 2 if args.smoke else max(50, int(budget_s * 3.0))   # ≈3 steps/s of 128 at bf16 (estimate)
        cmd += ["--max-steps", str(steps), "--set", f"num_workers={workers}", "--set", "optim.backbone_lr=1e-5",
                "--set", "logging.image_every=100000", "--set", "logging.checkpoint_every=500"]
        seconds = _run(cmd, out / f"train_{name}.log", env)
        throughput = steps * batch / seconds
        print(f"THROUGHPUT {name} {throughput:.0f} samples/s ({steps} steps of {batch} in {seconds:.0f} s, "
              f"{accel}, {precision})", flush=True)
        weights = run_dir / "final.safetensors"
        _run([py, "-m", "training.eval", "--checkpoint", str(weights), "--data", f"synthetic:{val_dir}",
              "--out", str(out / f"eval_{name}"), "--no-render"], out / f"eval_{name}.log", env)
        metrics = json.loads((out / f"eval_{name}" / "metrics.json").read_text())["metrics"]
        summary[name] = {"samples_per_s": throughput, "steps": steps, "batch": batch, "seconds": seconds,
                         "weights": str(weights), "metrics": metrics}
        print(f"RESULT {name} PA-MPJPE {metrics['pa_mpjpe_mm']:.1f} mm", flush=True)
    base = json.loads((out / "eval_mean" / "metrics.json").read_text())["metrics"]
    summary["mean_pose"] = base
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"RESULT mean pose PA-MPJPE {base['pa_mpjpe_mm']:.1f} mm; summary → {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
