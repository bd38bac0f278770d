"""Synthetic inputs for the fitting tests: keypoints projected from known bodies, and an
HMR-like regressor small enough for test-time optimisation in unit tests."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from core.fitting.losses import project_crop
from core.fitting.rom import sample_poses
from core.models.hmr import HMROutput
from core.models.ief import IEFRegressor

FOCAL, CROP = 5000.0, 224


def project_body_keypoints(body, body_pose: torch.Tensor, global_orient: torch.Tensor, transl: torch.Tensor,
                           betas: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A posed body's 49 SPIN joints seen by SPIN's crop camera (f = 5000, 224 px).

    Args:
        body_pose: (B, 69) axis-angle; global_orient: (B, 3); transl: (B, 3) camera-frame
            translation; betas: (B, 10) (default zeros).
    Returns:
        (joints (B, 49, 3) body frame, keypoints (B, 49, 3) crop pixels with confidence 1).
    """
    B = body_pose.shape[0]
    betas = torch.zeros(B, 10) if betas is None else betas
    with torch.no_grad():
        out = body(betas=betas, body_pose=body_pose, global_orient=global_orient)
        j2d = project_crop(out.joints, transl, FOCAL, CROP)
    return out.joints, torch.cat([j2d, torch.ones(B, 49, 1)], -1)


def make_data(body, B: int = 2, seed: int = 1) -> tuple[np.ndarray, torch.Tensor]:
    """(B, 224, 224, 3) uint8 noise crops and (B, 49, 3) keypoints of range-of-motion poses
    (zero betas, upright facing the camera at 45 m)."""
    rng = np.random.default_rng(seed)
    crops = (rng.random((B, CROP, CROP, 3)) * 255).astype(np.uint8)
    pose = torch.tensor(sample_poses(5, seed=seed)[:B], dtype=torch.float32)
    _, kp = project_body_keypoints(body, pose, torch.tensor([[np.pi, 0, 0]] * B), torch.tensor([[0.0, 0.0, 45.0]] * B))
    return crops, kp


def make_method_inputs(body, seed: int = 1):
    """``core.methods.MethodInputs`` for the registered TTO methods: a grey 260×260 image,
    box centre (130, 130), scale 1.3, and the crop-pixel keypoints (49, 3) of
    ``make_data(body, B=1, seed)``."""
    from core.methods import MethodInputs

    _, kp = make_data(body, B=1, seed=seed)
    image = np.full((260, 260, 3), 120, np.uint8)
    inputs = MethodInputs.from_image(image, np.array([130.0, 130.0]), 1.3)
    inputs.keypoints = kp[0].numpy().astype(np.float64)
    return inputs


class TinyRegressor(IEFRegressor):
    """An HMR-like regressor small enough for unit tests: two strided conv + BatchNorm
    layers, global pooling, the IEF head (with its dropout), 3 iterations."""

    def __init__(self, body, hidden: int = 64):
        super().__init__(16, mean_params=body, hidden=hidden)
        self.conv1 = nn.Conv2d(3, 8, 5, stride=4)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.bn2 = nn.BatchNorm2d(16)
        object.__setattr__(self, "body", body)
        self.n_iter = 3
        self.weights_trained = False

    def forward(self, images, n_iter=None):
        x = torch.relu(self.bn1(self.conv1(images)))
        x = torch.relu(self.bn2(self.conv2(x)))
        f = x.mean(dim=(2, 3))
        return HMROutput(self.iterate(f, n_iter or self.n_iter), f)


def make_tiny(body, seed: int = 0) -> TinyRegressor:
    """A seeded :class:`TinyRegressor` in eval mode with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    m = TinyRegressor(body)
    m.train()
    with torch.no_grad():                      # non-trivial BatchNorm statistics
        m(torch.randn(8, 3, CROP, CROP))
    m.eval()
    return m
