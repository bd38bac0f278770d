"""PyMAF (ResNet-50, "global mode" as released): a feature pyramid regressor with
mesh-aligned evidence (fact sheet spin_pymaf.md §5.2–5.3).

Pipeline for a (B, 3, 224, 224) crop:
  ResNet-50 → layer4 (B, 2048, 7, 7) → three deconv blocks → maps of 14², 28², 56² (256 ch).
  mean body (regressor.0's init_*)                                         → "mean"   (M0)
  level 0: sample the 21×21 grid on the 14² map → MLP → 2205-d → regressor.0 → "level 0" (M1)
  level 1: project M1's sampling vertices (≈431) → sample the 28² map → 5·N-d → regressor.1 (M2)
  level 2: the same on the 56² map with M2's vertices → regressor.2                 → (M3)
  dp_head on the 56² map → IUV (25 part logits, 15 coarse logits, U and V per part).
Each regressor takes one IEF step from the detached previous parameters.

Sampling: ``grid_sample(bilinear, zeros padding, align_corners=True)`` at points in SPIN's
normalised crop coordinates (crop pixel = 112·(p + 1)). Point features go through a Conv1d
MLP (256→128, [128+256]→64, [64+256]→5; LeakyReLU 0.01, final ReLU) and are flattened
channel-major (all points of channel 0 first).

Layouts (`layout=`):
  "official": the released checkpoint's 441 state-dict entries — including `Dmap`
      [431, V] selection buffers in every `maf_extractor.{i}`, the `points_grid` buffer and
      a `smpl` block of SMPL tensors in every `regressor.{i}` (loaded, never used: meshes
      come from the project's BodyModel). Needs the SMPL body (V = 6890).
  "project": no SMPL or Dmap buffers; the sampling vertices are the body's own
      `sampling_vertex_ids` (the open body's ≈431), so fc1 width = 5·N + 157.

Intermediate meshes (M0–M2) are evaluated only at the sampling vertices through the body's
subset path (`intermediate="subset"`, the default); M3 is always the full mesh.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.geometry import FOCAL_LENGTH, IMG_RES

from .backbones import create_backbone
from .body_ref import BodyHolder
from .ief import IEFRegressor, RegressorState
from .inputs import validate_images
from .prediction import MeshPrediction, evaluate_state, project_to_crop
from .smpl_buffers import OfficialSMPLBuffers

__all__ = ["PyMAF", "PyMAFOutput", "PyMAFLevel", "IUVPrediction", "FeatureSummary",
           "MAFExtractor", "IUVHead", "grid_points", "sample_point_features", "feature_summary",
           "decode_iuv"]

NUM_LEVELS = 3


# --------------------------------------------------------------------------- pieces
def grid_points(n: int = 21) -> torch.Tensor:
    """PyMAF's level-0 sampling grid, (2, n·n): ``meshgrid(lin, lin, indexing='ij')`` with
    lin = linspace(−1, 1, n); row 0 is the first grid coordinate (slowest), used as x."""
    lin = torch.linspace(-1.0, 1.0, n)
    gx, gy = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=0)


def sample_point_features(fmap: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features at normalised points.

    Args:
        fmap: (B, C, H, W).
        points: (B, N, 2) (x, y) in [−1, 1]; −1/+1 = centres of the first/last cells
            (align_corners=True); outside → zeros.
    Returns:
        (B, C, N).
    """
    return F.grid_sample(fmap, points[:, :, None, :], mode="bilinear", padding_mode="zeros",
                         align_corners=True)[..., 0]


class MAFExtractor(nn.Module):
    """Point-feature MLP `conv0, conv1, conv2` (Conv1d k=1) with skip-concat of the input.

    (B, 256, N) → (B, 5·N), channel-major. In the official layout it also owns the
    `Dmap` buffer (S, V): PyMAF's 6890 → 431 downsampling, a pure vertex selection.
    """

    def __init__(self, dims=(256, 128, 64, 5), dmap: torch.Tensor | None = None):
        super().__init__()
        c_in = dims[0]
        self.conv0 = nn.Conv1d(c_in, dims[1], 1)
        self.conv1 = nn.Conv1d(dims[1] + c_in, dims[2], 1)
        self.conv2 = nn.Conv1d(dims[2] + c_in, dims[3], 1)
        self.out_channels = dims[3]
        if dmap is not None:
            self.register_buffer("Dmap", dmap)

    def forward(self, point_features: torch.Tensor) -> torch.Tensor:
        x = point_features
        y = F.leaky_relu(self.conv0(x), 0.01)
        y = F.leaky_relu(self.conv1(torch.cat([y, x], dim=1)), 0.01)
        y = F.relu(self.conv2(torch.cat([y, x], dim=1)))
        return y.reshape(y.shape[0], -1)


class IUVHead(nn.Module):
    """PyMAF's `dp_head`: four 3×3 convs on the 56² map — `predict_u`, `predict_v` (25 = background
    + 24 parts), `predict_ann_index` (15 coarse parts), `predict_uv_index` (25 part logits)."""

    def __init__(self, in_channels: int = 256):
        super().__init__()
        self.predict_u = nn.Conv2d(in_channels, 25, 3, 1, 1)
        self.predict_v = nn.Conv2d(in_channels, 25, 3, 1, 1)
        self.predict_ann_index = nn.Conv2d(in_channels, 15, 3, 1, 1)
        self.predict_uv_index = nn.Conv2d(in_channels, 25, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> "IUVPrediction":
        u, v = self.predict_u(x), self.predict_v(x)
        index, ann = self.predict_uv_index(x), self.predict_ann_index(x)
        part, uv = decode_iuv(index, u, v)
        return IUVPrediction(u, v, index, ann, part, uv)


def decode_iuv(index_logits: torch.Tensor, u: torch.Tensor, v: torch.Tensor):
    """Per-pixel part = argmax of the 25 part logits (0 = background) and that part's (U, V).

    Args: index_logits, u, v: (B, 25, H, W).
    Returns: part (B, H, W) int64; uv (B, 2, H, W) (0 on background, raw regressed values
        elsewhere — nominally in [0, 1]).
    """
    part = index_logits.argmax(dim=1)
    idx = part[:, None]
    uv = torch.cat([u.gather(1, idx), v.gather(1, idx)], dim=1)
    return part, uv * (part[:, None] > 0)


@dataclass
class IUVPrediction:
    """Raw head outputs (B, 25|15, 56, 56) and the decoded part (B,56,56) / uv (B,2,56,56)."""

    u: torch.Tensor
    v: torch.Tensor
    uv_index: torch.Tensor
    ann_index: torch.Tensor
    part: torch.Tensor
    uv: torch.Tensor


@dataclass
class FeatureSummary:
    """Small pictures of a (B, C, H, W) map: `channel_sum` (B, H, W) and `pca` (B, H, W, 3),
    the projections on the 3 leading principal components (over pixels), each min-max
    scaled to [0, 1] per image, sign fixed so the largest loading is positive."""

    channel_sum: torch.Tensor
    pca: torch.Tensor


def feature_summary(fmap: torch.Tensor) -> FeatureSummary:
    """(B, C, H, W) → FeatureSummary (computed without gradients)."""
    with torch.no_grad():
        B, C, H, W = fmap.shape
        x = fmap.detach().float().reshape(B, C, H * W).transpose(1, 2)  # (B, HW, C)
        x = x - x.mean(dim=1, keepdim=True)
        x64 = x.double()
        _, vecs = torch.linalg.eigh(x64.transpose(1, 2) @ x64)  # (C, C) scatter, ascending
        comps = vecs[:, :, -3:].flip(-1).transpose(1, 2).to(x.dtype)  # (B, 3, C) leading axes
        flip = torch.sign(comps.gather(2, comps.abs().argmax(dim=2, keepdim=True)))
        proj = x @ (comps * flip).transpose(1, 2)  # (B, HW, 3)
        lo = proj.amin(dim=1, keepdim=True)
        hi = proj.amax(dim=1, keepdim=True)
        pca = ((proj - lo) / (hi - lo).clamp_min(1e-12)).reshape(B, H, W, -1)
        if pca.shape[-1] < 3:
            pca = F.pad(pca, (0, 3 - pca.shape[-1]))
        return FeatureSummary(fmap.detach().sum(dim=1), pca)


class PyMAFRegressor(IEFRegressor):
    """PyMAF's per-level regressor: one IEF step; optionally the official `smpl` block."""

    def __init__(self, feat_dim: int, mean_params=None, smpl: OfficialSMPLBuffers | None = None):
        super().__init__(feat_dim, mean_params)
        if smpl is not None:
            self.smpl = smpl


@dataclass
class PyMAFLevel:
    """One regression level.

    label: "mean", "level 0", "level 1", "level 2".
    state: parameters after this level (pose6d, rotmat, betas, cam).
    mesh: the body at `state` (subset `mesh.vertex_ids` or full mesh).
    sampling_points: (B, N, 2) crop pixels where this level sampled its feature map
        (grid at level 0, projected previous-mesh vertices at levels 1–2); None for "mean".
    sampled_vertex_ids: (N,) vertices projected to get `sampling_points` (levels 1–2).
    feature_map: (B, C, H, W) the map this level sampled (C = 256; 128 with "blazepose"; None for "mean").
    feature_summary: FeatureSummary of `feature_map` when asked (`with_summaries=True`).
    """

    label: str
    state: RegressorState
    mesh: MeshPrediction
    sampling_points: torch.Tensor | None = None
    sampled_vertex_ids: torch.Tensor | None = None
    feature_map: torch.Tensor | None = None
    feature_summary: FeatureSummary | None = None


@dataclass
class PyMAFOutput:
    """levels: [mean, level 0, level 1, level 2]; iuv: the dp_head prediction on the 56²
    map (None if the model has no IUV head); global_feature: (B, 2048) pooled layer4."""

    levels: list[PyMAFLevel]
    iuv: IUVPrediction | None = None
    global_feature: torch.Tensor | None = None

    @property
    def final(self) -> PyMAFLevel:
        return self.levels[-1]


# --------------------------------------------------------------------------- model
PYRAMID_STRIDES = (16, 8, 4)  # the maps levels 0, 1, 2 read from a pyramid backbone


def _pyramid_neck(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise 3×3 + pointwise 1×1 → BN → ReLU: adapts a pyramid map for one level."""
    return nn.Sequential(nn.Conv2d(c_in, c_in, 3, 1, 1, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _selection_matrix(ids: torch.Tensor, num_vertices: int) -> torch.Tensor:
    D = torch.zeros(len(ids), num_vertices)
    D[torch.arange(len(ids)), ids] = 1.0
    return D


class PyMAF(BodyHolder, nn.Module):
    """PyMAF (see module docstring).

    Args:
        body: a ``core.body`` BodyModel (needed to run; None builds the official layout
            with placeholder buffers, e.g. to load a checkpoint's keys).
        layout: "official" (checkpoint-compatible) or "project".
        grid_size: level-0 grid side (21).
        mlp_dims: MAF MLP widths (256, 128, 64, 5); (128, 128, 64, 5) with "blazepose".
        iuv_head: build the auxiliary dp_head (True, as released).
        backbone: "resnet50" as released; other ``BACKBONES`` names for project models.
            "blazepose" (project layout only): the three levels read BlazePose's own
            decoder pyramid at strides 16, 8, 4 (16², 32², 64² for its 256 input; the 224
            crop is resized inside the backbone) through a light neck each (depthwise 3×3 +
            1×1 to 128 channels, BN, ReLU) instead of the three deconvolutions; the IUV head
            reads the 64² map.

    The body is not a submodule (the state dict keeps the checkpoint's keys) but moves
    with the model (`.to()`).
    """

    input_size = (224, 224)

    def __init__(self, body=None, layout: str = "official", grid_size: int = 21,
                 mlp_dims=None, iuv_head: bool = True, backbone: str = "resnet50"):
        super().__init__()
        if mlp_dims is None:
            mlp_dims = (128, 128, 64, 5) if backbone == "blazepose" else (256, 128, 64, 5)
        mlp_dims = tuple(int(d) for d in mlp_dims)
        if layout not in ("official", "project"):
            raise ValueError(f"PyMAF layout must be 'official' or 'project', got {layout!r}")
        if layout == "project" and body is None:
            raise ValueError("PyMAF(layout='project') needs a body: its sampling vertices set the layer sizes")
        self.layout = layout
        self._set_body(body)
        self.weights_trained = False
        self.backbone_name = backbone

        self.feature_extractor = create_backbone(backbone)
        self.uses_pyramid = hasattr(self.feature_extractor, "forward_pyramid")
        if self.uses_pyramid:
            if layout == "official":
                raise ValueError(f"PyMAF's official layout is ResNet-50 only; use layout='project' with {backbone!r}")
            map_channels = mlp_dims[0]
            channels = self.feature_extractor.pyramid_channels
            self.neck = nn.ModuleList(_pyramid_neck(channels[s], map_channels) for s in PYRAMID_STRIDES)
        else:
            map_channels = 256
            deconv: list[nn.Module] = []
            c_in = self.feature_extractor.out_channels
            for _ in range(NUM_LEVELS):
                deconv += [nn.ConvTranspose2d(c_in, 256, 4, 2, 1, output_padding=0, bias=False),
                           nn.BatchNorm2d(256), nn.ReLU(inplace=True)]
                c_in = 256
            self.deconv_layers = nn.Sequential(*deconv)

        if layout == "official":
            num_vertices = body.num_vertices if body is not None else 6890
            if body is not None and num_vertices != 6890:
                raise ValueError(f"PyMAF's official layout is built on SMPL (6890 vertices); this body "
                                 f"({getattr(body, 'name', '?')}) has {num_vertices}. "
                                 f"Use layout='project' with the open body.")
            ids = (torch.as_tensor(np.asarray(body.sampling_vertex_ids), dtype=torch.int64)
                   if body is not None else None)
            n_sampling = len(ids) if ids is not None else 431
            dmap = (_selection_matrix(ids, num_vertices) if ids is not None
                    else torch.zeros(n_sampling, num_vertices))
            self.maf_extractor = nn.ModuleList(MAFExtractor(mlp_dims, dmap.clone()) for _ in range(NUM_LEVELS))
        else:
            n_sampling = len(np.asarray(body.sampling_vertex_ids))
            self.maf_extractor = nn.ModuleList(MAFExtractor(mlp_dims) for _ in range(NUM_LEVELS))
        self.register_buffer("points_grid", grid_points(grid_size)[None])

        c_out = mlp_dims[-1]
        widths = [grid_size * grid_size * c_out] + [n_sampling * c_out] * (NUM_LEVELS - 1)
        self.regressor = nn.ModuleList(
            PyMAFRegressor(w, body, OfficialSMPLBuffers(body) if layout == "official" else None)
            for w in widths)
        self.dp_head = IUVHead(map_channels) if iuv_head else None
        self._ids_cache: dict = {}

    @property
    def backbone(self) -> nn.Module:
        return self.feature_extractor

    # ------------------------------------------------------------------ sampling vertices
    def sampling_vertex_ids(self, level: int) -> torch.Tensor | None:
        """Vertex ids (N,) sampled at `level` (1 or 2). Official layout: read from that
        extractor's `Dmap` (None if it is not a pure selection — then the full mesh is
        evaluated and multiplied by Dmap). Project layout: the body's ids."""
        device = self.points_grid.device
        if self.layout == "project":
            return torch.as_tensor(np.asarray(self.body.sampling_vertex_ids), dtype=torch.int64, device=device)
        D = self.maf_extractor[level].Dmap
        key = (D.data_ptr(), D._version, D.device)
        cached = self._ids_cache.get(level)
        if cached is None or cached[0] != key:
            if not torch.any(D):
                raise RuntimeError("PyMAF's Dmap buffers are empty: build the model with the SMPL body "
                                   "or load an official checkpoint before running it")
            is_one_hot = bool(((D != 0).sum(dim=1) == 1).all() and (D.max(dim=1).values == 1).all())
            cached = (key, D.argmax(dim=1) if is_one_hot else None)
            self._ids_cache[level] = cached
        return cached[1]

    def _sample_from_mesh(self, mesh: MeshPrediction, cam: torch.Tensor, level: int):
        """Sampling vertices of a previous mesh → (ids, normalised points (B,N,2))."""
        ids = self.sampling_vertex_ids(level)
        verts = mesh.vertices.detach()
        if ids is None:  # general (non-selection) downsampling matrix
            if mesh.vertex_ids is not None:
                raise RuntimeError("a non-selection Dmap needs full intermediate meshes")
            points3d = torch.einsum("sv,bvc->bsc", self.maf_extractor[level].Dmap.to(verts.dtype), verts)
        elif mesh.vertex_ids is None:
            points3d = verts[:, ids]
        elif torch.equal(mesh.vertex_ids, ids):
            points3d = verts
        else:  # subset evaluated for another level's ids: pick ours out of it
            position = torch.full((int(max(mesh.vertex_ids.max(), ids.max())) + 1,), -1,
                                  dtype=torch.int64, device=ids.device)
            position[mesh.vertex_ids] = torch.arange(len(mesh.vertex_ids), device=ids.device)
            if (position[ids] < 0).any():
                raise RuntimeError("the intermediate mesh does not contain this level's sampling vertices")
            points3d = verts[:, position[ids]]
        _, norm, _ = project_to_crop(points3d, cam.detach(), FOCAL_LENGTH, IMG_RES)
        return ids, norm

    # ------------------------------------------------------------------ forward
    def forward(self, images: torch.Tensor, intermediate: str = "subset",
                with_summaries: bool = False, with_iuv: bool = True) -> PyMAFOutput:
        """Args:
            images: (B, 3, 224, 224) ImageNet-normalised RGB crops.
            intermediate: "subset" (M0–M2 at the sampling vertices only) or "full".
            with_summaries: add FeatureSummary per level (for the Trace).
            with_iuv: run the auxiliary IUV head (it only makes the IUV map; the meshes do
                not depend on it). False → ``iuv`` is None.
        """
        validate_images(images, self.input_size, "PyMAF")
        if intermediate not in ("subset", "full"):
            raise ValueError(f"intermediate must be 'subset' or 'full', got {intermediate!r}")
        if self.body is None:
            raise ValueError("PyMAF needs a body to run: create_model('pymaf', body=load_body(...))")
        B = images.shape[0]
        if self.uses_pyramid:
            pyramid = self.feature_extractor.forward_pyramid(images)
            fmap = pyramid[max(pyramid)]
        else:
            fmap = self.feature_extractor.forward_features(images)
        global_feature = fmap.mean(dim=(2, 3))

        def mesh_ids(next_level: int):
            if intermediate == "full" or next_level >= NUM_LEVELS:
                return None
            return self.sampling_vertex_ids(next_level)

        state = self.regressor[0].initial_state(B)
        levels = [PyMAFLevel("mean", state, evaluate_state(self.body, state, mesh_ids(1)))]
        s_feat = fmap
        for i in range(NUM_LEVELS):
            if self.uses_pyramid:
                s_feat = self.neck[i](pyramid[PYRAMID_STRIDES[i]])
            else:
                s_feat = self.deconv_layers[3 * i: 3 * i + 3](s_feat)
            prev = levels[-1]
            if i == 0:
                ids = None
                points = self.points_grid.transpose(1, 2).expand(B, -1, -1)
            else:
                ids, points = self._sample_from_mesh(prev.mesh, prev.state.cam, i)
            code = self.maf_extractor[i](sample_point_features(s_feat, points))
            state = self.regressor[i].step(code, prev.state.detach())
            level = PyMAFLevel(f"level {i}", state, evaluate_state(self.body, state, mesh_ids(i + 1)),
                               sampling_points=(points + 1.0) * (IMG_RES / 2.0),
                               sampled_vertex_ids=ids, feature_map=s_feat)
            if with_summaries:
                level.feature_summary = feature_summary(s_feat)
            levels.append(level)
        iuv = self.dp_head(s_feat) if self.dp_head is not None and with_iuv else None
        return PyMAFOutput(levels, iuv, global_feature)

