"""MeshPose's two heads on the stride-4 feature map, and the soft-argmax operations.

**VertexPose** (paper §3.1): a 1×1 convolution gives per-pixel scores over the V low-poly
vertices plus one background channel (the last). Two readings of the same scores:

- per pixel, a softmax over the V + 1 channels is the posterior over vertices (used to
  decode UV and by the barycentric / UV-consistency losses);
- per vertex, a softmax over the pixels of ``gain · score`` is a heatmap whose expectation
  (spatial soft-argmax) is the vertex's 2D position.

**Regression branch** (supplementary §3.2.1, eqs. 3–6), per axis i ∈ {x, y, z}:
``P_i = f1D_i(ψ_i(avg_xy(F)))``: global average pooling (B, C), ``ψ_i`` a 1×1 Conv1d
expanding C×1 to C·C′ (+ BN + ReLU, reshaped to C channels × C′ = 64 positions), ``f1D_i``
a 1×1 Conv1d from C to V channels → (B, V, 64) bin logits. A soft-argmax over the 64 bins
gives a value in [0, 64] (bin k is centred at k + 0.5) mapped linearly to
x ∈ [−W, 2W], y ∈ [−H, 3H], z ∈ [−2W, 2W] crop pixels (W, H: crop width and height;
(0, 0) is the top-left corner). Visibility (eq. 6): ``w = σ(mean over the 64 bins of P_z)``.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["spatial_soft_argmax", "bin_soft_argmax", "REGRESSION_RANGES", "NUM_BINS", "VertexPoseHead",
           "AxisRegressor", "RegressionHead", "bins_to_pixels"]

# Per axis: (low, high) as multiples of (W, H, W) — paper, supplementary §3.2.1.
REGRESSION_RANGES = {"x": (-1.0, 2.0, "W"), "y": (-1.0, 3.0, "H"), "z": (-2.0, 2.0, "W")}
NUM_BINS = 64


def spatial_soft_argmax(scores: torch.Tensor, stride: float = 1.0, gain: float = 1.0) -> torch.Tensor:
    """Expected pixel position of each channel's spatial softmax.

    Args:
        scores: (B, K, h, w) logits.
        stride: input pixels per map pixel (4 for MeshPose's stride-4 maps).
        gain: multiplies the logits before the softmax (sharper for larger gain).
    Returns:
        (B, K, 2) (x, y) in input pixels, pixel (r, c) of the map having its centre at
        ``((c + 0.5)·stride, (r + 0.5)·stride)`` (the renderer's convention).
    """
    if scores.ndim != 4:
        raise ValueError(f"spatial_soft_argmax expects (B, K, h, w) scores, got {tuple(scores.shape)}")
    B, K, h, w = scores.shape
    prob = torch.softmax(gain * scores.reshape(B, K, h * w), dim=-1).reshape(B, K, h, w)
    xs = (torch.arange(w, device=scores.device, dtype=scores.dtype) + 0.5) * stride
    ys = (torch.arange(h, device=scores.device, dtype=scores.dtype) + 0.5) * stride
    x = (prob.sum(2) * xs).sum(-1)
    y = (prob.sum(3) * ys).sum(-1)
    return torch.stack([x, y], dim=-1)


def bin_soft_argmax(logits: torch.Tensor) -> torch.Tensor:
    """Soft-argmax over the last axis of (..., n) logits → (...) in [0, n], bin k at k + 0.5."""
    n = logits.shape[-1]
    centres = torch.arange(n, device=logits.device, dtype=logits.dtype) + 0.5
    return (torch.softmax(logits, dim=-1) * centres).sum(-1)


def bins_to_pixels(values: torch.Tensor, axis: str, crop_size: tuple[int, int],
                   num_bins: int = NUM_BINS) -> torch.Tensor:
    """Map soft-argmax values in [0, num_bins] to crop pixels for ``axis`` in {x, y, z}."""
    lo, hi, ref = REGRESSION_RANGES[axis]
    h, w = crop_size
    size = float(w if ref == "W" else h)
    return (lo + (hi - lo) * values / num_bins) * size


class VertexPoseHead(nn.Module):
    """1×1 conv: (B, C, h, w) → (B, V + 1, h, w) scores (background last)."""

    def __init__(self, in_channels: int, num_vertices: int):
        super().__init__()
        self.num_vertices = num_vertices
        self.conv = nn.Conv2d(in_channels, num_vertices + 1, 1)
        nn.init.normal_(self.conv.weight, std=0.001)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class AxisRegressor(nn.Module):
    """``f1D(ψ(pooled))``: (B, C) → (B, V, C′) bin logits (supplementary eqs. 3–5)."""

    def __init__(self, in_channels: int, num_vertices: int, num_bins: int = NUM_BINS):
        super().__init__()
        self.in_channels, self.num_bins = in_channels, num_bins
        self.expand = nn.Sequential(nn.Conv1d(in_channels, in_channels * num_bins, 1, bias=False),
                                    nn.BatchNorm1d(in_channels * num_bins), nn.ReLU(inplace=True))
        self.to_vertices = nn.Conv1d(in_channels, num_vertices, 1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        B = pooled.shape[0]
        h = self.expand(pooled[:, :, None]).reshape(B, self.in_channels, self.num_bins)
        return self.to_vertices(h)


class RegressionHead(nn.Module):
    """Per-vertex (x, y, z) in crop pixels and visibility from the pooled feature map.

    ``forward(features, crop_size)`` returns ``(xyz (B, V, 3), visibility_logits (B, V),
    bin_logits (B, 3, V, 64))``; visibility = sigmoid(visibility_logits).
    """

    def __init__(self, in_channels: int, num_vertices: int, num_bins: int = NUM_BINS):
        super().__init__()
        self.num_bins = num_bins
        self.x = AxisRegressor(in_channels, num_vertices, num_bins)
        self.y = AxisRegressor(in_channels, num_vertices, num_bins)
        self.z = AxisRegressor(in_channels, num_vertices, num_bins)

    def forward(self, features: torch.Tensor, crop_size: tuple[int, int]):
        pooled = features.mean(dim=(2, 3))
        logits = torch.stack([self.x(pooled), self.y(pooled), self.z(pooled)], dim=1)   # (B, 3, V, n)
        xyz = torch.stack([bins_to_pixels(bin_soft_argmax(logits[:, i]), a, crop_size, self.num_bins)
                           for i, a in enumerate("xyz")], dim=-1)
        visibility_logits = logits[:, 2].mean(dim=-1)
        return xyz, visibility_logits, logits
