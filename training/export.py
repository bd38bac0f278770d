"""Export the network(s) of a training checkpoint as project weights (safetensors + JSON).

    python -m training.export runs/hmr_blazepose/checkpoints/last.ckpt --out runs/hmr_blazepose/export

Writes ``<out>/final.safetensors`` (and ``final_aux.safetensors`` for Meta-HMR), exactly what
the trainer writes at its end, from any intermediate checkpoint — so a run stopped at any
time gives usable weights. The checkpoint is read without unpickling code
(:mod:`training.checkpoint_io`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["export_checkpoint", "main"]


def export_checkpoint(ckpt_path, out_dir) -> list[Path]:
    """Rebuild the method module from the checkpoint's config, load its weights, export."""
    from .checkpoint_io import load_training_checkpoint
    from .cli import module_class

    ckpt = load_training_checkpoint(ckpt_path)
    cfg = ckpt["hyper_parameters"]["cfg"]
    module = module_class(cfg["method"])(cfg)
    module.load_state_dict(ckpt["state_dict"], strict=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return module.export(out, global_step=int(ckpt.get("global_step", 0)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="a .ckpt written by python -m training")
    ap.add_argument("--out", required=True, help="output folder")
    args = ap.parse_args(argv)
    for path in export_checkpoint(args.checkpoint, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
