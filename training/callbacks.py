"""Lightning callbacks: image panels (PNG under ``<out>/panels`` and, when TensorBoard is
installed, in its log) and the export of the final network."""
from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl

from .visualize import make_panel, write_png

__all__ = ["PanelWriter", "ExportOnTrainEnd"]


class PanelWriter(pl.Callback):
    """Writes the panel a training step returned (``outputs["panel"]``: rows of images)."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rows = outputs.get("panel") if isinstance(outputs, dict) else None
        if not rows or not trainer.is_global_zero:
            return
        image = make_panel(rows)
        step = int(outputs.get("panel_step", trainer.global_step))
        write_png(self.out_dir / f"step_{step:07d}.png", image)
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "add_image"):      # TensorBoard
                experiment.add_image("panel", image, step, dataformats="HWC")


class ExportOnTrainEnd(pl.Callback):
    """Saves the trained network(s) in the project's safetensors format (rank 0)."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.paths: list[Path] = []

    def on_train_end(self, trainer, pl_module):
        if trainer.is_global_zero:
            self.paths = pl_module.export(self.out_dir)
