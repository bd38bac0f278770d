"""HMR: the IEF regressor (6D rotations, 3 iterations) trained with SPIN's losses on GT
parameters (no fitting in the loop). Weights: keypoints 5, pose 1, betas 0.001,
camera 1, all × 60 (fact sheet ``spin_pymaf.md`` §2.2)."""
from __future__ import annotations

import torch

from .base import BaseModule

__all__ = ["HMRModule"]


class HMRModule(BaseModule):
    """``python -m training hmr``: supervises the final IEF state."""

    OPTIONS: dict = {}

    def __init__(self, cfg: dict):
        super().__init__(cfg)
        self.model = self.build_regressor()

    def compute(self, batch):
        targets = self.targets(batch)
        state = self.model(batch["img"]).final
        loss, logs = self.supervise(state, self.mesh_of(state), targets)
        panel = None
        if self.panel_due():
            with torch.no_grad():
                panel = self.panel_rows(batch, state, self.mesh_of(state.detach(), full=True))
        return loss, logs, panel

    def predict_final(self, images):
        state = self.model(images).final
        return state, self.mesh_of(state, full=True)
