"""Slow training checks: overfitting 16 samples, and DDP with 2 CPU processes (gloo)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
pl = pytest.importorskip("pytorch_lightning")

from training.cli import build_trainer, module_class  # noqa: E402
from training.config import load_config  # noqa: E402
from training.data import HMRDataModule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth16(tmp_path_factory):
    from core.data.synthetic import write_dataset

    out = tmp_path_factory.mktemp("synth16") / "s16"
    write_dataset(out, num=16, shard_size=8, seed=5, progress=False)
    return out


class Recorder(pl.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[outputs["panel_step"]] = float(outputs["loss"])


@pytest.mark.slow
def test_hmr_overfits_16_samples(synth16, tmp_path):
    """ResNet-18 HMR at 64² on 16 samples: the loss falls by ≥ 80 % (≈50 s on one core)."""
    cfg = load_config("hmr", None, ["model.name=hmr_resnet18", "img_res=64", "num_workers=0", "batch_size=16",
                                    "max_steps=50", "optim.lr=1e-4", "logging.image_every=0",
                                    "logging.checkpoint_every=1000", "augment.synthetic_pixel_noise=0",
                                    f"out_dir={tmp_path}"], f"synthetic:{synth16}")
    pl.seed_everything(0)
    rec = Recorder()
    build_trainer(cfg, 1, "cpu", callbacks=[rec]).fit(module_class("hmr")(cfg), HMRDataModule(cfg), weights_only=False)
    losses = [rec.losses[k] for k in sorted(rec.losses)]
    assert min(losses[-5:]) < 0.2 * losses[0], losses


@pytest.mark.slow
@pytest.mark.parametrize("method", ["hmr", "spin", "meta-hmr"])
def test_ddp_two_cpu_processes(method, synth16, tmp_path):
    """`--devices 2` on CPU: Lightning's DDP (gloo) runs a few steps; both processes share
    the steps (each takes its own half of the stream positions) and rank 0 exports. For
    SPIN, rank 0's fits hold the SMPLify updates of both processes (all-gathered)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    sets = ["model.name=hmr_resnet18", "img_res=32", "num_workers=0", "logging.image_every=0",
            "logging.checkpoint_every=2", "logging.log_every=1"]
    if method == "spin":
        sets += ["method_options.smplify_iters=2", "method_options.use_gt_smpl=false"]
    if method == "meta-hmr":  # a loaded, frozen aux network (DDP used to refuse its gradient-less parameters)
        from core.models import create_model, save_checkpoint

        aux = save_checkpoint(create_model("hmr_resnet18", body="open", n_iter=3), tmp_path / "aux.safetensors",
                              trained=True)
        sets += ["method_options.main_iters=2", f"method_options.aux_checkpoint={aux}",
                 "method_options.aux_supervised=false"]
    cmd = [sys.executable, "-m", "training", method, "--data", f"synthetic:{synth16}", "--max-steps", "2",
           "--batch-size", "2", "--devices", "2", "--accelerator", "cpu", "--out", str(tmp_path)]
    cmd += sum([["--set", s] for s in sets], [])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "distributed_backend=gloo" in proc.stderr + proc.stdout
    assert (tmp_path / "final.safetensors").is_file()
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 2
    if method == "spin":     # 2 steps × batch 2 × 2 processes = 8 distinct samples fitted
        fits = np.load(tmp_path / "fits" / "s16_fits.npy")
        assert (np.abs(fits).sum(1) > 0).sum() == 8


@pytest.mark.slow
def test_gpu_recipe_runs_its_whole_path_on_the_cpu(tmp_path):
    """training/recipes/gpu_quick.py --smoke: data on all cores, the three BlazePose models
    trained (bf16/GPU replaced by fp32/CPU), evaluated against the mean pose, throughput
    lines printed, summary.json written."""
    pytest.importorskip("mediapipe")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(ROOT / "training" / "recipes" / "gpu_quick.py"), "--out", str(tmp_path),
                           "--smoke"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("THROUGHPUT") == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("hmr", "pymaf", "meshpose"):
        assert summary[name]["steps"] == 2 and np.isfinite(summary[name]["metrics"]["pa_mpjpe_mm"])
        assert (tmp_path / name / "final.safetensors").is_file()
    assert summary["mean_pose"]["pa_mpjpe_mm"] > 0
