"""Pixel IUV from VertexPose scores: the three UV aggregation strategies of the paper
(supplementary §2.1, Table 1b).

Per pixel, ``q = softmax(scores)`` over the V low-poly vertices and the background (last
channel). A pixel is foreground when the vertices hold more mass than the background
(``q_bg < 0.5``). Then:

- ``"barycentric"`` (MeshPose): the face with the largest score ``f* = argmax_f Σ_{n∈f} q_n``;
  I = its part; UV = Σ_k (q_{n_k} / Σ_j q_{n_j}) · UV of corner k (the face's per-corner
  chart UVs, so seams are handled);
- ``"nearest"``: the strongest vertex ``v* = argmax_v q_v``; I, UV = that vertex's part and UV;
- ``"global_average"``: UV = Σ_v q_v·UV_v / Σ_v q_v over all vertices (each in its own
  chart); I = the strongest vertex's part (so only the UV aggregation differs from "nearest").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .lowpoly import LowPolyTemplate

__all__ = ["DecodedIUV", "decode_iuv", "vertex_posterior", "UV_STRATEGIES"]

UV_STRATEGIES = ("barycentric", "nearest", "global_average")
_CHUNK = 2048


@dataclass
class DecodedIUV:
    """part: (B, h, w) long 0..24 (0 = background); uv: (B, h, w, 2) in [0, 1] (0 on
    background); foreground: (B, h, w) bool; element: (B, h, w) long, the chosen face
    (barycentric) or vertex (nearest / global average), −1 on background."""

    part: torch.Tensor
    uv: torch.Tensor
    foreground: torch.Tensor
    element: torch.Tensor

    def stacked(self) -> torch.Tensor:
        """(B, h, w, 3) float ``[I, U, V]`` (I as a float part id), the Trace's IUV layout."""
        return torch.cat([self.part[..., None].to(self.uv.dtype), self.uv], dim=-1)


def vertex_posterior(scores: torch.Tensor) -> torch.Tensor:
    """(B, V + 1, h, w) scores → per-pixel posterior over vertices and background (softmax)."""
    return torch.softmax(scores, dim=1)


def _lp_tensor(array, device, dtype=None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), device=device, dtype=dtype)


def decode_iuv(scores: torch.Tensor, lowpoly: LowPolyTemplate, strategy: str = "barycentric",
               background_threshold: float = 0.5) -> DecodedIUV:
    """Decode an IUV map from VertexPose scores (see module docstring).

    Args:
        scores: (B, V + 1, h, w) logits, V = ``lowpoly.num_vertices``, background last.
        lowpoly: the template (faces, per-corner face UVs, vertex parts/UVs).
        strategy: one of :data:`UV_STRATEGIES`.
        background_threshold: a pixel is background when its background posterior ≥ this.
    Returns:
        :class:`DecodedIUV`.
    """
    if strategy not in UV_STRATEGIES:
        raise ValueError(f"unknown UV strategy {strategy!r}; choose one of {UV_STRATEGIES}")
    V = lowpoly.num_vertices
    if scores.ndim != 4 or scores.shape[1] != V + 1:
        raise ValueError(f"scores must be (B, {V + 1}, h, w) (low-poly vertices + background), "
                         f"got {tuple(scores.shape)}")
    B, _, h, w = scores.shape
    device, dtype = scores.device, scores.dtype
    q = vertex_posterior(scores)
    fg = q[:, V] < background_threshold                                      # (B, h, w)
    qv = q[:, :V].permute(0, 2, 3, 1)[fg]                                    # (P, V)
    part = torch.zeros(B, h, w, dtype=torch.long, device=device)
    uv = torch.zeros(B, h, w, 2, dtype=dtype, device=device)
    element = torch.full((B, h, w), -1, dtype=torch.long, device=device)
    if qv.shape[0] == 0:
        return DecodedIUV(part, uv, fg, element)
    if strategy == "barycentric":
        faces = _lp_tensor(lowpoly.faces, device, torch.long)                # (F, 3)
        # f* per pixel, in chunks of pixels so that (pixels, F, 3) stays small
        best = torch.cat([qv[i:i + _CHUNK][:, faces].sum(-1).argmax(dim=1)
                          for i in range(0, qv.shape[0], _CHUNK)])           # (P,)
        wts = torch.gather(qv, 1, faces[best])                              # (P, 3)
        wts = wts / wts.sum(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
        face_uv = _lp_tensor(lowpoly.face_uv, device, dtype)[best]           # (P, 3, 2)
        uv[fg] = (wts[..., None] * face_uv).sum(1)
        part[fg] = _lp_tensor(lowpoly.face_part, device, torch.long)[best]
        element[fg] = best
    else:
        vertex_uv = _lp_tensor(lowpoly.vertex_uv, device, dtype)             # (V, 2)
        best = qv.argmax(dim=1)
        part[fg] = _lp_tensor(lowpoly.vertex_part, device, torch.long)[best]
        element[fg] = best
        if strategy == "nearest":
            uv[fg] = vertex_uv[best]
        else:
            uv[fg] = (qv @ vertex_uv) / qv.sum(-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    return DecodedIUV(part, uv, fg, element)
