"""MeshPose's high-poly upsampler: low-poly (≈518) → level 1 (≈1723) → full body mesh.

As the paper (supplementary §3.2.3): two linear layers along the vertex axis, shared by
x, y and z, applied to root-aligned vertices, trained on their own (not with the network).
Choices of ours:

- **No bias.** With the centre subtracted before and added back after, the map is then
  exactly equivariant to rotation, scale and translation, so it upsamples a mesh in
  metres or in MeshPose's pixel space alike.
- **Fixed sparsity.** Each output vertex mixes only ``k`` source vertices near it on the
  rest template (layer 1: the low-poly vertices nearest to the level-1 vertex among those
  of its closest low-poly face and that face's 1-ring; layer 2: the body's GraphCMR-style
  upsampling support plus its level-1 neighbours). Dense layers would hold 12.8 M
  weights (≈25 MB at fp16); the sparse ones hold ≈0.1 M (≈0.4 MB), train in minutes on a
  CPU and cannot pick up spurious long-range correlations.
- **Initialisation** from barycentric upsampling: layer 1 = barycentric weights of each
  level-1 vertex's closest point on the low-poly rest surface, layer 2 = the body's own
  upsampling matrix ``U_0``.
- **Centre** = mean of the low-poly vertices (the paper uses a weighted set of 16 vertices;
  any fixed convex combination gives the same equivariance).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .lowpoly import LowPolyTemplate

__all__ = ["MeshUpsampler", "SparseVertexLinear", "UpsamplerOutput", "upsampler_path", "barycentric_matrix",
           "add_training_noise", "evaluate_upsampler",
           "build_upsampler", "load_upsampler", "save_upsampler"]

UPSAMPLER_FORMAT = "hmr-studio-meshpose-upsampler/1"


@dataclass
class UpsamplerOutput:
    """level1: (B, M, 3) ≈1723 vertices; full: (B, N, 3) the body's vertices."""

    level1: torch.Tensor
    full: torch.Tensor


class SparseVertexLinear(nn.Module):
    """y[:, i] = Σ_k weight[i, k] · x[:, index[i, k]] (padding entries have mask 0).

    Args:
        index: (M, K) source vertex ids; weight: (M, K) initial weights; mask: (M, K) bool.
    """

    def __init__(self, index: np.ndarray, weight: np.ndarray, mask: np.ndarray, num_inputs: int):
        super().__init__()
        self.num_inputs = int(num_inputs)
        self.register_buffer("index", torch.as_tensor(np.asarray(index), dtype=torch.long))
        self.register_buffer("mask", torch.as_tensor(np.asarray(mask), dtype=torch.bool))
        self.weight = nn.Parameter(torch.as_tensor(np.asarray(weight), dtype=torch.float32) * self.mask)

    @property
    def num_outputs(self) -> int:
        return int(self.index.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_inputs, C) → (B, num_outputs, C)."""
        w = (self.weight * self.mask).to(x.dtype)
        return torch.einsum("bmkc,mk->bmc", x[:, self.index], w)

    def dense(self) -> torch.Tensor:
        """The (num_outputs, num_inputs) matrix."""
        out = torch.zeros(self.num_outputs, self.num_inputs, dtype=self.weight.dtype, device=self.weight.device)
        rows = torch.arange(self.num_outputs, device=out.device)[:, None].expand_as(self.index)
        out.index_put_((rows, self.index), self.weight * self.mask, accumulate=True)
        return out


class MeshUpsampler(nn.Module):
    """Low-poly → full mesh (see module docstring).

    Args:
        layer1: SparseVertexLinear low → level 1; layer2: level 1 → full.
        level1_ids: (M,) body ids of the level-1 vertices (targets of the level-1 loss).
    """

    def __init__(self, layer1: SparseVertexLinear, layer2: SparseVertexLinear, level1_ids: np.ndarray):
        super().__init__()
        if layer2.num_inputs != layer1.num_outputs:
            raise ValueError(f"layer 2 reads {layer2.num_inputs} vertices but layer 1 gives {layer1.num_outputs}")
        self.layer1 = layer1
        self.layer2 = layer2
        self.register_buffer("level1_ids", torch.as_tensor(np.asarray(level1_ids), dtype=torch.long))
        self.trained_on: dict = {}

    @property
    def num_low(self) -> int:
        return self.layer1.num_inputs

    @property
    def num_full(self) -> int:
        return self.layer2.num_outputs

    def forward(self, low: torch.Tensor, return_level1: bool = False):
        """Args:
            low: (B, V, 3) low-poly vertices (any unit, any frame).
            return_level1: also return the intermediate level.
        Returns:
            (B, N, 3) full-mesh vertices, or :class:`UpsamplerOutput`.
        """
        if low.ndim != 3 or low.shape[1] != self.num_low or low.shape[2] != 3:
            raise ValueError(f"upsampler expects low-poly vertices (B, {self.num_low}, 3), got {tuple(low.shape)}")
        centre = low.mean(dim=1, keepdim=True)
        level1 = self.layer1(low - centre)
        full = self.layer2(level1) + centre
        if return_level1:
            return UpsamplerOutput(level1 + centre, full)
        return full


# ------------------------------------------------------------------------------ building
def barycentric_matrix(src_verts: np.ndarray, src_faces: np.ndarray, points: np.ndarray):
    """Barycentric weights of each point's closest point on the source surface.

    Returns (face ids (Q,), (Q, 3) corner vertex ids, (Q, 3) weights)."""
    from core.body.build_open import closest_point_barycentric

    fid, bary = closest_point_barycentric(src_verts, src_faces, points)
    return fid, src_faces[fid], bary


def _one_ring(faces: np.ndarray, n: int) -> list[set]:
    ring = [set() for _ in range(n)]
    for a, b, c in faces:
        ring[a].update((b, c))
        ring[b].update((a, c))
        ring[c].update((a, b))
    return ring


def _support(seed_ids: np.ndarray, seed_w: np.ndarray, ring: list[set], src: np.ndarray,
             point: np.ndarray, k: int):
    """Indices/weights/mask of one row: the seed vertices (barycentric weights) first, then
    their 1-ring neighbours nearest to ``point`` (weight 0), padded to ``k``."""
    ids = [int(i) for i in seed_ids]
    w = [float(x) for x in seed_w]
    cand = sorted(set().union(*(ring[i] for i in ids)) - set(ids),
                  key=lambda j: (float(((src[j] - point) ** 2).sum()), j))
    for j in cand[: max(0, k - len(ids))]:
        ids.append(int(j))
        w.append(0.0)
    # merge duplicates (a degenerate face may repeat a vertex)
    merged: dict[int, float] = {}
    for i, x in zip(ids, w):
        merged[i] = merged.get(i, 0.0) + x
    ids, w = list(merged), list(merged.values())
    ids, w = ids[:k], w[:k]
    mask = [True] * len(ids) + [False] * (k - len(ids))
    ids += [ids[0]] * (k - len(ids))
    w += [0.0] * (k - len(w))
    return ids, w, mask


def build_upsampler(body, lowpoly: LowPolyTemplate, k1: int = 16, k2: int = 12) -> MeshUpsampler:
    """A barycentric (untrained) upsampler for ``body`` and its low-poly template.

    Args:
        k1: sources per level-1 vertex (layer 1); k2: sources per full vertex (layer 2).
    """
    rest = body.v_template.detach().cpu().numpy().astype(np.float64)
    (levels, ups) = body.downsampling()
    level1_ids = np.asarray(levels[0][0], np.int64)
    faces1 = np.asarray(levels[0][1], np.int64)      # the level-1 mesh
    low = rest[lowpoly.vertex_ids]
    # layer 1: level-1 vertices from the low-poly surface
    pts1 = rest[level1_ids]
    _, corners, bary = barycentric_matrix(low, lowpoly.faces, pts1)
    ring_low = _one_ring(lowpoly.faces, lowpoly.num_vertices)
    rows = [_support(corners[i], bary[i], ring_low, low, pts1[i], k1) for i in range(len(pts1))]
    layer1 = SparseVertexLinear(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                np.array([r[2] for r in rows]), lowpoly.num_vertices)
    # layer 2: the body's level-1 → full upsampling matrix, support grown by the level-1 1-ring
    U0 = ups[0].tocsr()
    ring1 = _one_ring(faces1, len(level1_ids))
    pts1_rest = rest[level1_ids]
    rows2 = []
    for i in range(U0.shape[0]):
        start, end = U0.indptr[i], U0.indptr[i + 1]
        order = np.argsort(-U0.data[start:end], kind="stable")
        seed = U0.indices[start:end][order]
        rows2.append(_support(seed, U0.data[start:end][order], ring1, pts1_rest, rest[i], k2))
    layer2 = SparseVertexLinear(np.array([r[0] for r in rows2]), np.array([r[1] for r in rows2]),
                                np.array([r[2] for r in rows2]), len(level1_ids))
    return MeshUpsampler(layer1, layer2, level1_ids)


# ------------------------------------------------------------------------------ files
def upsampler_path(body_name: str) -> Path:
    from core import ASSETS_DIR

    return ASSETS_DIR / "body" / body_name / "meshpose_upsampler.safetensors"


def save_upsampler(upsampler: MeshUpsampler, path, info: dict | None = None, dtype=torch.float32) -> Path:
    """Write the weights (safetensors; `dtype` for the weights) and a JSON sidecar.

    The description (format, sizes, ``info``) is stored in the safetensors metadata and in
    ``<path>.json``.
    """
    from safetensors.torch import save

    from core.utils.io import atomic_write_bytes

    path = Path(path)
    desc = {"format": UPSAMPLER_FORMAT, "num_low": upsampler.num_low,
            "num_level1": upsampler.layer1.num_outputs, "num_full": upsampler.num_full,
            "k1": int(upsampler.layer1.index.shape[1]), "k2": int(upsampler.layer2.index.shape[1]),
            "info": info or {}}
    text = json.dumps(desc, indent=1, sort_keys=True)
    tensors = {}
    for name, t in upsampler.state_dict().items():
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(dtype)
        elif t.dtype == torch.long:
            t = t.to(torch.int32)
        tensors[name] = t.contiguous()
    atomic_write_bytes(path, save(tensors, metadata={"meshpose_upsampler": text}))
    atomic_write_bytes(path.with_suffix(".json"), (text + "\n").encode())
    return path


def load_upsampler(path, body=None, lowpoly: LowPolyTemplate | None = None) -> MeshUpsampler:
    """Read an upsampler written by :func:`save_upsampler` (weights → float32).

    ``body`` / ``lowpoly``, when given, are checked against the stored sizes.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"upsampler weights not found: {path}. Train them with "
                                "python -m training.meshpose_upsampler")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    desc = json.loads(meta.get("meshpose_upsampler", "{}"))
    if desc.get("format") != UPSAMPLER_FORMAT:
        raise ValueError(f"{path} is not a MeshPose upsampler file (format {desc.get('format')!r})")
    if body is not None and desc["num_full"] != body.num_vertices:
        raise ValueError(f"{path} upsamples to {desc['num_full']} vertices, the body has {body.num_vertices}")
    if lowpoly is not None and desc["num_low"] != lowpoly.num_vertices:
        raise ValueError(f"{path} reads {desc['num_low']} low-poly vertices, the template has {lowpoly.num_vertices}")

    def layer(prefix, num_inputs):
        return SparseVertexLinear(tensors[f"{prefix}.index"].long().numpy(),
                                  tensors[f"{prefix}.weight"].float().numpy(),
                                  tensors[f"{prefix}.mask"].bool().numpy(), num_inputs)

    up = MeshUpsampler(layer("layer1", desc["num_low"]), layer("layer2", desc["num_level1"]),
                       tensors["level1_ids"].long().numpy())
    up.trained_on = desc.get("info", {})
    return up


# ------------------------------------------------------------------------------ noise and evaluation
def add_training_noise(low: torch.Tensor, root: torch.Tensor, generator: torch.Generator,
                       p_spikes: float = 0.5, p_gaussian: float = 0.5, spike_fraction: float = 0.25,
                       spike_scale: float = 0.15, gaussian_scale: float = 0.05) -> torch.Tensor:
    """The paper's upsampler augmentation (supplementary §3.2.3), on root-aligned vertices.

    Per sample: with probability ``p_spikes`` a random ``spike_fraction`` of the vertices get
    a spike of ``±spike_scale`` times their (root-relative) position (random sign per
    vertex); otherwise, with probability ``p_gaussian``, every coordinate gets Gaussian noise
    of std ``gaussian_scale`` times its own magnitude; otherwise the sample stays clean.
    (Our reading: "in the other case, with probability 0.5" leaves a quarter clean.)

    Args:
        low: (B, V, 3) vertices; root: (B, 3) root (e.g. pelvis) positions.
        generator: torch.Generator on the CPU.
    Returns:
        (B, V, 3) noisy vertices (same frame as ``low``).
    """
    B, V, _ = low.shape
    rel = low - root[:, None]
    coin = torch.rand(B, generator=generator)
    spikes = coin < p_spikes
    gauss = (~spikes) & (torch.rand(B, generator=generator) < p_gaussian)
    chosen = torch.rand(B, V, generator=generator) < spike_fraction
    sign = torch.where(torch.rand(B, V, generator=generator) < 0.5, -1.0, 1.0)
    spike = (spikes[:, None] & chosen).to(low.dtype) * sign.to(low.dtype) * spike_scale
    noise = torch.randn(B, V, 3, generator=generator).to(low.dtype) * gaussian_scale
    rel = rel * (1.0 + spike[..., None].to(low.device))
    rel = rel + gauss[:, None, None].to(low.device, low.dtype) * noise.to(low.device) * rel.abs()
    return rel + root[:, None]


@torch.no_grad()
def evaluate_upsampler(upsampler: MeshUpsampler, body, lowpoly: LowPolyTemplate, num_bodies: int = 256,
                       seed: int = 20240601, noise: bool = False, batch: int = 64) -> dict:
    """Mean per-vertex error (mm) of the upsampled mesh on random bodies
    (:func:`~.random_bodies.sample_bodies`, a generator seeded with ``seed``).

    Returns {"mean_mm", "median_mm", "p95_mm", "hands_mm", "level1_mm", "num_bodies"}.
    With ``noise`` the inputs get :func:`add_training_noise` (seeded the same way).
    """
    from .random_bodies import sample_bodies

    gen = torch.Generator().manual_seed(seed)
    errs, lvl1 = [], []
    hands = torch.as_tensor(np.isin(np.asarray(body.vertex_part), (3, 4)))
    done = 0
    while done < num_bodies:
        n = min(batch, num_bodies - done)
        out = sample_bodies(body, n, gen)
        verts = out.vertices.float()
        low = lowpoly.select(verts)
        if noise:
            low = add_training_noise(low, out.smpl_joints[:, 0].float(), gen)
        pred = upsampler(low.to(next(upsampler.parameters())), return_level1=True)
        errs.append((pred.full.cpu() - verts).norm(dim=-1) * 1000.0)
        lvl1.append((pred.level1.cpu() - verts[:, upsampler.level1_ids.cpu()]).norm(dim=-1) * 1000.0)
        done += n
    e = torch.cat(errs)
    return {"mean_mm": float(e.mean()), "median_mm": float(e.median()),
            "p95_mm": float(torch.quantile(e.flatten()[::7], 0.95)),
            "hands_mm": float(e[:, hands].mean()), "level1_mm": float(torch.cat(lvl1).mean()),
            "num_bodies": int(num_bodies)}
