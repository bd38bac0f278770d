"""``python -m training <method> --config cfg.yaml [--data SPEC] [--max-steps N] [--devices N]
[--precision P] [--resume CKPT|last] [--out DIR] [--set key=value ...]``

Runs one method's trainer with Lightning: ModelCheckpoint every ``logging.checkpoint_every``
steps (+ ``last.ckpt``), CSV logs (and TensorBoard when installed), image panels every
``logging.image_every`` steps, DDP over ``--devices`` processes (gloo on CPU, NCCL on GPU),
mixed precision via ``--precision``, and the final network exported to
``<out>/final.safetensors``.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

__all__ = ["MODULES", "module_class", "build_trainer", "main"]

MODULES = {
    "hmr": "training.hmr:HMRModule",
    "spin": "training.spin:SPINModule",
    "pymaf": "training.pymaf:PyMAFModule",
    "meta-hmr": "training.meta_hmr:MetaHMRModule",
    "meshpose": "training.meshpose:MeshPoseModule",
}


def module_class(method: str):
    if method not in MODULES:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(MODULES)}")
    mod, cls = MODULES[method].split(":")
    return getattr(importlib.import_module(mod), cls)


def _loggers(out_dir: Path):
    from pytorch_lightning.loggers import CSVLogger

    loggers = [CSVLogger(str(out_dir), name="logs", version="")]
    try:
        import tensorboard  # noqa: F401
        from pytorch_lightning.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(str(out_dir), name="tensorboard", version=""))
    except ImportError:
        pass
    return loggers


def build_trainer(cfg: dict, devices="auto", accelerator: str = "auto", precision: str = "32",
                  enable_progress_bar: bool = False, callbacks: list | None = None):
    """The Lightning Trainer for a config (see module docstring)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from .callbacks import ExportOnTrainEnd, PanelWriter

    out = Path(cfg["out_dir"])
    lg = cfg["logging"]
    ckpt = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="step{step:07d}", auto_insert_metric_name=False,
                           every_n_train_steps=int(lg["checkpoint_every"]), save_last=True, save_top_k=-1)
    n_dev = devices if isinstance(devices, int) else (int(devices) if str(devices).isdigit() else None)
    strategy = "ddp" if (n_dev or 1) > 1 else "auto"
    val = bool(cfg["data"]["val"])
    return pl.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, precision=precision,
        max_steps=int(cfg["max_steps"]), max_epochs=-1, logger=_loggers(out),
        callbacks=[ckpt, PanelWriter(out / "panels"), ExportOnTrainEnd(out)] + list(callbacks or []),
        log_every_n_steps=int(lg["log_every"]), use_distributed_sampler=False,
        val_check_interval=int(lg["val_every"]) if val else None, check_val_every_n_epoch=None if val else 1,
        limit_val_batches=1.0 if val else 0, num_sanity_val_steps=0,
        enable_progress_bar=enable_progress_bar, enable_model_summary=False, default_root_dir=str(out))


def main(argv=None) -> int:
    from .config import METHODS, load_config

    ap = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    ap.add_argument("method", choices=METHODS)
    ap.add_argument("--config", help="YAML/JSON config (merged over training/configs/<method>.yaml)")
    ap.add_argument("--data", help="training data: synthetic:DIR | npz:FILE=IMG_ROOT[@ratio], '+'-joined")
    ap.add_argument("--max-steps", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--devices", default="auto", help="number of devices/processes (DDP when > 1)")
    ap.add_argument("--accelerator", default="auto", help="auto | cpu | gpu")
    ap.add_argument("--precision", default="32", help="32 | 16-mixed | bf16-mixed")
    ap.add_argument("--resume", help="Lightning checkpoint to continue from, or 'last' (<out>/checkpoints/last.ckpt)")
    ap.add_argument("--out", help="run folder (overrides out_dir)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, repeatable")
    ap.add_argument("--progress", action="store_true", help="show a progress bar")
    args = ap.parse_args(argv)

    overrides = list(args.set)
    if args.max_steps is not None:
        overrides.append(f"max_steps={args.max_steps}")
    if args.batch_size is not None:
        overrides.append(f"batch_size={args.batch_size}")
    if args.out:
        overrides.append(f"out_dir={args.out}")
    cfg = load_config(args.method, args.config, overrides, args.data)

    import pytorch_lightning as pl
    import torch

    from .data import HMRDataModule

    pl.seed_everything(int(cfg["seed"]), workers=True)
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    module = module_class(args.method)(cfg)
    dm = HMRDataModule(cfg)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = build_trainer(cfg, devices, args.accelerator, args.precision, args.progress)
    ckpt_path = args.resume
    if ckpt_path == "last":
        ckpt_path = str(Path(cfg["out_dir"]) / "checkpoints" / "last.ckpt")
    if ckpt_path and not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"--resume: checkpoint not found: {ckpt_path}")
    if ckpt_path:
        from .checkpoint_io import load_training_checkpoint

        load_training_checkpoint(ckpt_path)   # refuses (with a message) a file that names code
    from .checkpoint_io import safe_checkpoint_globals

    with safe_checkpoint_globals():           # NumPy arrays in the loop state, nothing else
        trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    if trainer.is_global_zero:
        out = Path(cfg["out_dir"])
        (out / "config.json").write_text(json.dumps(cfg, indent=1, default=str) + "\n")
        print(f"done: {trainer.global_step} steps; final model → {out / 'final.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
