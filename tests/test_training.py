"""Trainers end to end on a tiny synthetic set (a few steps, ResNet-18, 64² crops), exact
resume, configs, losses and Meta-HMR's inner step against slow references."""
import json

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
pl = pytest.importorskip("pytorch_lightning")

from training.cli import build_trainer, main, module_class  # noqa: E402
from training.config import load_config, parse_data_spec  # noqa: E402
from training.data import HMRDataModule  # noqa: E402

TINY = ["model.name=hmr_resnet18", "img_res=64", "num_workers=0", "batch_size=4", "logging.image_every=1",
        "logging.checkpoint_every=2", "logging.log_every=1"]
METHOD_TINY = {
    "hmr": [],
    "spin": ["method_options.smplify_iters=2", "method_options.use_gt_smpl=false"],
    "pymaf": ["model.name=pymaf", "model.backbone=resnet18"],
    "meta-hmr": ["method_options.main_iters=2"],
    "meshpose": ["model.name=meshpose_xs"],
}


class Recorder(pl.Callback):
    def __init__(self):
        self.losses = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses[outputs["panel_step"]] = float(outputs["loss"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from core.data.synthetic import write_dataset

    out = tmp_path_factory.mktemp("synth") / "tiny"
    write_dataset(out, num=8, shard_size=4, seed=1, progress=False)
    return out


def run(method, data, out, steps, extra=(), resume=None, precision="32"):
    cfg = load_config(method, None, TINY + METHOD_TINY[method] + [f"max_steps={steps}", f"out_dir={out}"] + list(extra),
                      data)
    pl.seed_everything(0)
    rec = Recorder()
    trainer = build_trainer(cfg, 1, "cpu", precision=precision, callbacks=[rec])
    module = module_class(method)(cfg)
    from training.checkpoint_io import safe_checkpoint_globals

    with safe_checkpoint_globals():
        trainer.fit(module, HMRDataModule(cfg), ckpt_path=resume, weights_only=True)
    return rec.losses, module, trainer


@pytest.mark.parametrize("method", ["hmr", "spin", "pymaf", "meta-hmr", "meshpose"])
def test_trainer_runs_end_to_end(method, synth, tmp_path):
    losses, module, trainer = run(method, f"synthetic:{synth}", tmp_path, 2)
    assert sorted(losses) == [0, 1] and all(np.isfinite(list(losses.values())))
    assert (tmp_path / "final.safetensors").is_file() and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert len(list((tmp_path / "panels").glob("step_*.png"))) == 2
    from core.models import load_project_checkpoint
    import core.models.meshpose  # noqa: F401  (registers the MeshPose models)

    model = load_project_checkpoint(tmp_path / "final.safetensors")
    assert model.weights_trained and model.checkpoint_config["config"]["method"] == method
    if method == "spin":
        fits = np.load(tmp_path / "fits" / "tiny_fits.npy")
        assert fits.shape == (8, 82) and np.abs(fits).sum() > 0     # SMPLify filled some fits in
    if method == "meta-hmr":
        assert (tmp_path / "final_aux.safetensors").is_file()
    metrics = (tmp_path / "logs" / "metrics.csv").read_text()
    assert "train/loss" in metrics


@pytest.mark.parametrize("method", ["spin", "meta-hmr"])
def test_bf16_mixed_precision_runs(method, synth, tmp_path):
    """Under autocast the fits, SMPLify, the body and the robust losses stay float32 (SPIN
    used to crash: 'lu_cpu' not implemented for BFloat16)."""
    losses, module, _ = run(method, f"synthetic:{synth}", tmp_path, 2, precision="bf16-mixed")
    assert sorted(losses) == [0, 1] and all(np.isfinite(list(losses.values())))


def test_frozen_backbone_trains_only_the_head(synth, tmp_path):
    """optim.backbone_lr=0: the pretrained backbone stays as it was, the IEF head learns."""
    extra = ["optim.backbone_lr=0"]
    cfg = load_config("hmr", None, TINY + extra + [f"out_dir={tmp_path}"], f"synthetic:{synth}")
    pl.seed_everything(0)
    before = {k: v.clone() for k, v in module_class("hmr")(cfg).model.state_dict().items()}
    losses, module, _ = run("hmr", f"synthetic:{synth}", tmp_path, 2, extra=extra)
    after = module.model.state_dict()
    trunk = {n for n, _ in module.model.backbone.named_parameters()}
    assert trunk and all(not p.requires_grad for p in module.model.backbone.parameters())
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and all(k.split(".")[0] in ("fc1", "fc2", "decpose", "decshape", "deccam") for k in changed)
    groups = module.configure_optimizers().param_groups
    assert len(groups) == 1 and not ({id(p) for p in groups[0]["params"]}
                                     & {id(p) for p in module.model.backbone.parameters()})


def test_second_stage_starts_from_weights_with_a_cosine_schedule(synth, tmp_path):
    from core.models import create_model, save_checkpoint

    torch.manual_seed(5)
    start = save_checkpoint(create_model("hmr_resnet18", body="open"), tmp_path / "start.safetensors", trained=True)
    extra = [f"init_from={start}", "optim.schedule=cosine", "optim.final_lr_ratio=0.1", "max_steps=10"]
    cfg = load_config("hmr", None, TINY + extra + [f"out_dir={tmp_path}"], f"synthetic:{synth}")
    module = module_class("hmr")(cfg)
    ref = create_model("hmr_resnet18", body="open")
    from core.models import load_project_checkpoint
    ref.load_state_dict(load_project_checkpoint(start).state_dict())
    for k, v in module.model.state_dict().items():
        torch.testing.assert_close(v, ref.state_dict()[k])
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    lr = float(cfg["optim"]["lr"])
    assert lrs[0] == pytest.approx(lr) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert sched.get_last_lr()[0] == pytest.approx(0.1 * lr)
    with pytest.raises(ValueError, match="holds a"):
        module_class("hmr")(load_config("hmr", None, TINY + [f"init_from={start}", "model.name=hmr_mobilenet_v2",
                                                              f"out_dir={tmp_path}"], f"synthetic:{synth}"))


def test_blazepose_regression_branch_alone_can_be_fine_tuned(synth, tmp_path):
    """optim.backbone_trainable=pooled_branch: BlazePose's regression branch and the head
    learn, its encoder/decoder (the pyramid) stay as they were."""
    pytest.importorskip("mediapipe")
    extra = ["model.name=hmr_blazepose", "optim.backbone_lr=1e-4", "optim.backbone_trainable=pooled_branch"]
    losses, module, _ = run("hmr", f"synthetic:{synth}", tmp_path, 2, extra=extra)
    trunk = module.model.backbone
    from core.models.backbones import BlazePoseGHUM

    fresh = BlazePoseGHUM()
    branch = {id(p) for p in trunk.pooled_branch_parameters()}
    changed = {n for (n, p), q in zip(trunk.named_parameters(), fresh.parameters()) if not torch.equal(p, q)}
    names = {n for n, p in trunk.named_parameters() if id(p) in branch}
    assert changed and changed <= names
    assert all(p.requires_grad == (id(p) in branch) for p in trunk.parameters())


def test_train_loader_keeps_its_workers(synth, tmp_path):
    cfg = load_config("hmr", None, TINY + ["num_workers=1", f"out_dir={tmp_path}"], f"synthetic:{synth}")
    loader = HMRDataModule(cfg).train_dataloader()
    assert loader.persistent_workers and loader.num_workers == 1
    assert loader.pin_memory == torch.cuda.is_available()


def test_resume_refuses_a_checkpoint_that_names_code(synth, tmp_path):
    """`--resume FILE` never runs code from FILE: a pickle whose __reduce__ calls a function
    is refused before Lightning sees it, and the function does not run."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": {}, "hyper_parameters": {}, "x": Payload()}, f)
    with pytest.raises(Exception, match="not a checkpoint of this project's trainer"):
        main(["hmr", "--data", f"synthetic:{synth}", "--out", str(tmp_path / "run"), "--resume", str(bad)]
             + sum([["--set", s] for s in TINY], []))
    assert not marker.exists()


def test_gmof_is_float32_under_autocast():
    from core.fitting.losses import gmof

    x = torch.tensor([300.0, 1e4], dtype=torch.float16)
    y = gmof(x, 100.0)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    torch.testing.assert_close(y, gmof(x.float(), 100.0))


@pytest.mark.slow
def test_resume_gives_the_same_next_step_loss(synth, tmp_path):
    """Kill-and-resume (≈12 s): a run stopped after step 2 and resumed from its step-2
    checkpoint has exactly the losses of an uninterrupted run at steps 2 and 3 (same
    batches, same dropout masks, same optimiser state)."""
    full, _, _ = run("hmr", f"synthetic:{synth}", tmp_path / "a", 4)
    _, _, _ = run("hmr", f"synthetic:{synth}", tmp_path / "b", 2)       # "killed" after step 2's checkpoint
    ckpt = tmp_path / "b" / "checkpoints" / "step0000002.ckpt"
    resumed, _, trainer = run("hmr", f"synthetic:{synth}", tmp_path / "b", 4, resume=str(ckpt))
    assert sorted(resumed) == [2, 3] and trainer.global_step == 4
    assert resumed[2] == pytest.approx(full[2], rel=1e-5)
    assert resumed[3] == pytest.approx(full[3], rel=1e-5)


def test_spin_fits_survive_resume(synth, tmp_path):
    _, first, _ = run("spin", f"synthetic:{synth}", tmp_path, 2)
    saved = first.fits.fits["tiny"]["pose"].copy()
    ckpt = tmp_path / "checkpoints" / "step0000002.ckpt"
    state = torch.load(ckpt, weights_only=False)
    np.testing.assert_allclose(state["fits"]["tiny"]["pose"].numpy(), saved)


def test_npz_data_and_static_fits(tmp_path):
    """HMR and PyMAF on a SPIN .npz file (IUV targets rendered on the fly, final fits)."""
    import cv2

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    names = []
    for i in range(4):
        names.append(f"img/{i}.jpg")
        cv2.imwrite(str(tmp_path / names[-1]), rng.integers(0, 255, size=(120, 100, 3), dtype=np.uint8))
    part = np.concatenate([rng.uniform(20, 90, size=(4, 24, 2)), np.ones((4, 24, 1))], -1)
    np.savez(tmp_path / "toy.npz", imgname=np.array(names), center=np.full((4, 2), 55.0), scale=np.full(4, 0.5),
             part=part, pose=rng.normal(scale=0.2, size=(4, 72)), shape=rng.normal(size=(4, 10)),
             has_smpl=np.array([1, 0, 0, 1]))
    np.savez(tmp_path / "toy_final.npz", pose=rng.normal(scale=0.2, size=(4, 72)), betas=rng.normal(size=(4, 10)),
             valid_fit=np.array([1, 1, 0, 0]))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data:\n  train:\n    - {{kind: npz, path: {tmp_path / 'toy.npz'}, img_root: {tmp_path}, "
                   f"fits: {tmp_path / 'toy_final.npz'}}}\n")
    from training.config import load_config as lc

    c = lc("pymaf", cfg, TINY + METHOD_TINY["pymaf"] + ["max_steps=1", f"out_dir={tmp_path / 'run'}"])
    pl.seed_everything(0)
    rec = Recorder()
    module = module_class("pymaf")(c)
    build_trainer(c, 1, "cpu", callbacks=[rec]).fit(module, HMRDataModule(c), weights_only=False)
    assert np.isfinite(rec.losses[0])
    assert "toy" in module.fits


def test_cli_and_config_errors(synth, tmp_path):
    with pytest.raises(KeyError, match="loss.keypoint2d"):
        load_config("hmr", None, ["loss.keypoint2d=1"], f"synthetic:{synth}")
    with pytest.raises(ValueError, match="no training data"):
        load_config("hmr")
    with pytest.raises(ValueError, match="image root"):
        parse_data_spec("npz:a.npz")
    assert parse_data_spec("npz:a.npz=imgs@0.3+synthetic:d") == [
        {"kind": "npz", "path": "a.npz", "img_root": "imgs", "ratio": 0.3},
        {"kind": "synthetic", "path": "d", "img_root": None, "ratio": 1.0}]
    with pytest.raises(KeyError, match="method_options"):
        module_class("hmr")(load_config("hmr", None, ["method_options.bogus=1"], f"synthetic:{synth}"))
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"method": "spin"}))
    with pytest.raises(ValueError, match="not 'hmr'"):
        load_config("hmr", cfg, data=f"synthetic:{synth}")
    assert main(["hmr", "--data", f"synthetic:{synth}", "--max-steps", "1", "--accelerator", "cpu", "--devices", "1",
                 "--out", str(tmp_path / "cli")] + sum([["--set", s] for s in TINY], [])) == 0
    assert (tmp_path / "cli" / "config.json").is_file()


# ----------------------------------------------------------------------------- losses
def test_iuv_loss_against_explicit_loops():
    from training.losses import iuv_loss
    from core.render.parts import DENSEPOSE_TO_COARSE15

    g = torch.Generator().manual_seed(0)
    B, H, W = 2, 3, 2
    u, v, idx = (torch.randn(B, 25, H, W, generator=g) for _ in range(3))
    ann = torch.randn(B, 15, H, W, generator=g)
    part = torch.randint(0, 25, (B, H, W), generator=g)
    uv = torch.rand(B, 2, H, W, generator=g) * (part > 0)[:, None]
    out = iuv_loss(u, v, idx, ann, part, uv, valid=torch.tensor([True, True]))
    ce = ce_ann = su = sv = 0.0
    sl1 = lambda d: 0.5 * d * d if abs(d) < 1 else abs(d) - 0.5  # noqa: E731
    for b in range(B):
        for y in range(H):
            for x in range(W):
                p = int(part[b, y, x])
                ce += -torch.log_softmax(idx[b, :, y, x], 0)[p]
                ce_ann += -torch.log_softmax(ann[b, :, y, x], 0)[int(DENSEPOSE_TO_COARSE15[p])]
                su += sl1(float(u[b, p, y, x] - uv[b, 0, y, x]))
                sv += sl1(float(v[b, p, y, x] - uv[b, 1, y, x]))
    n = B * H * W
    assert float(out["iuv_index"]) == pytest.approx(float(ce) / n, rel=1e-5)
    assert float(out["iuv_ann"]) == pytest.approx(float(ce_ann) / n, rel=1e-5)
    assert float(out["iuv_u"]) == pytest.approx(0.5 * su / B, rel=1e-5)
    assert float(out["iuv_v"]) == pytest.approx(0.5 * sv / B, rel=1e-5)
    none = iuv_loss(u, v, idx, ann, part, uv, valid=torch.tensor([False, False]))
    assert float(none["iuv_total"]) == 0.0


def test_keypoint_3d_loss_and_reduction():
    from training.losses import Term, keypoint_3d_loss, reduce_terms

    g = torch.Generator().manual_seed(1)
    pred = torch.randn(3, 49, 3, generator=g)
    gt = torch.cat([torch.randn(3, 24, 3, generator=g), torch.rand(3, 24, 1, generator=g)], -1)
    ref = []
    for b in range(3):
        p = pred[b, 25:] - pred[b, 25:][[2, 3]].mean(0)
        t = gt[b, :, :3] - gt[b, [2, 3], :3].mean(0)
        ref.append((gt[b, :, 3:] * (p - t) ** 2).mean())
    torch.testing.assert_close(keypoint_3d_loss(pred, gt), torch.stack(ref))
    terms = {"a": Term(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True])),
             "b": Term(torch.tensor([4.0, 4.0, 4.0]))}
    total, parts = reduce_terms(terms, {"a": 2.0, "b": 0.5, "scale": 10.0})
    assert float(total) == pytest.approx(10 * (2 * 2.0 + 0.5 * 4.0))
    per, _ = reduce_terms(terms, {"a": 2.0, "b": 0.5}, per_sample=True, scale=1.0)
    torch.testing.assert_close(per, torch.tensor([2 * 1 + 2.0, 2.0, 2 * 3 + 2.0]))


def _train_cli(synth, out, steps, resume=None):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "training", "hmr", "--data", f"synthetic:{synth}", "--out", str(out),
           "--max-steps", str(steps)] + sum([["--set", s] for s in TINY + ["logging.image_every=1000"]], [])
    if resume:
        cmd += ["--resume", resume]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def _csv_losses(out) -> dict[int, str]:
    import csv

    rows = csv.DictReader(open(out / "logs" / "metrics.csv"))
    return {int(r["step"]): r["train/loss"] for r in rows if r.get("train/loss")}


def test_resume_after_sigkill_is_bit_exact(synth, tmp_path):
    """A training process killed with SIGKILL mid-run and resumed with ``--resume last``
    logs, from its last checkpoint on, exactly (bit for bit, as printed in metrics.csv) the
    losses of an uninterrupted run — across several epoch boundaries (8 samples, batch 4:
    an epoch every 2 steps)."""
    import signal
    import time

    steps = 12
    full = _train_cli(synth, tmp_path / "full", steps)
    assert full.wait(timeout=300) == 0, full.stderr.read().decode()[-2000:]
    reference = _csv_losses(tmp_path / "full")
    assert sorted(reference) == list(range(steps))

    out = tmp_path / "killed"
    proc = _train_cli(synth, out, steps)
    deadline = time.monotonic() + 300
    while not (out / "checkpoints" / "step0000004.ckpt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = max(int(p.stem[4:]) for p in (out / "checkpoints").glob("step*.ckpt"))
    assert 4 <= done < steps, done
    resumed = _train_cli(synth, out, steps, resume="last")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()[-2000:]
    after = {k: v for k, v in _csv_losses(out).items() if k >= done}
    assert sorted(after) == list(range(done, steps))
    assert after == {k: reference[k] for k in after}
