"""MeshPose's low-poly template: ≈518 vertices selected from the full body mesh.

The template is built once by :func:`build_lowpoly` (half-edge collapses of the body's
rest mesh, see :mod:`.decimate`) and stored as ``assets/body/<name>/meshpose_lowpoly.npz``
(``python -m core.models.meshpose.build_lowpoly``). Because every kept vertex *is* a body
vertex, the low-poly mesh of any posed body is ``body_vertices[:, vertex_ids]``.

Labels carried over from the body (DensePose convention, part 1..24):

- every low-poly face descends from one body face and keeps its part; the decimation only
  collapses a vertex into one whose charts include all of its own, so every corner of a
  low-poly face lies in that face's chart and ``face_uv`` (per corner) is the body's own
  per-corner UV of that vertex in that chart (seams are handled per corner, as the body's);
- per vertex: ``vertex_part`` / ``vertex_uv`` (the body's), and the vertex's UV in every
  chart it belongs to: ``chart_uv`` (V, 25, 2) with ``in_chart`` (V, 25).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .decimate import decimate_half_edge

__all__ = ["LowPolyTemplate", "build_lowpoly", "load_lowpoly", "lowpoly_path", "LOWPOLY_DEFAULTS",
           "NUM_PARTS"]

NUM_PARTS = 24
HAND_PARTS = (3, 4)
FOOT_PARTS = (5, 6)
# The committed template's build parameters (see build_lowpoly's docstring).
LOWPOLY_DEFAULTS = dict(target_vertices=518, hand_importance=0.3, foot_importance=0.5,
                        length_weight=0.2, min_normal_dot=0.2)
_CACHE: dict = {}


@dataclass
class LowPolyTemplate:
    """The low-poly mesh and its labels (NumPy arrays; see the module docstring).

    vertex_ids: (V,) int64 ids of the kept body vertices (sorted).
    faces: (F, 3) int64 triangles over 0..V−1 (the body's winding).
    face_part: (F,) int64 part 1..24; face_uv: (F, 3, 2) float32 per-corner (U, V).
    vertex_part: (V,) int64; vertex_uv: (V, 2) float32.
    chart_uv: (V, 25, 2) float32 UV of each vertex in chart p (index 0 unused);
    in_chart: (V, 25) bool.
    flip_permutation: (V,) int64 left/right vertex permutation, or None if not symmetric.
    body_name: the body it was built from; info: build parameters and statistics.
    """

    vertex_ids: np.ndarray
    faces: np.ndarray
    face_part: np.ndarray
    face_uv: np.ndarray
    vertex_part: np.ndarray
    vertex_uv: np.ndarray
    chart_uv: np.ndarray
    in_chart: np.ndarray
    flip_permutation: np.ndarray | None
    body_name: str
    info: dict = field(default_factory=dict)

    @property
    def num_vertices(self) -> int:
        return int(len(self.vertex_ids))

    @property
    def num_faces(self) -> int:
        return int(len(self.faces))

    @property
    def edges(self) -> np.ndarray:
        """(E, 2) unique undirected edges (sorted pairs, lexicographic order)."""
        e = np.concatenate([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]])
        return np.unique(np.sort(e, axis=1), axis=0)

    def select(self, full_vertices: torch.Tensor) -> torch.Tensor:
        """Low-poly vertices of full meshes: (B, N, 3) → (B, V, 3)."""
        if full_vertices.shape[-2] <= int(self.vertex_ids.max()):
            raise ValueError(f"expected full-body vertices (B, N, 3) with N > {int(self.vertex_ids.max())}, "
                             f"got {tuple(full_vertices.shape)}")
        return full_vertices[..., torch.as_tensor(self.vertex_ids, device=full_vertices.device), :]

    def save(self, path) -> Path:
        from core.utils.io import atomic_savez

        arrays = dict(vertex_ids=self.vertex_ids, faces=self.faces, face_part=self.face_part,
                      face_uv=self.face_uv.astype(np.float32), vertex_part=self.vertex_part,
                      vertex_uv=self.vertex_uv.astype(np.float32),
                      chart_uv=self.chart_uv.astype(np.float32), in_chart=self.in_chart,
                      body_name=np.array(self.body_name),
                      info=np.array(json.dumps(self.info, sort_keys=True, indent=1)))
        if self.flip_permutation is not None:
            arrays["flip_permutation"] = self.flip_permutation
        atomic_savez(path, compress=True, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path) -> "LowPolyTemplate":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"low-poly template not found: {path}. Build it with "
                                    "python -m core.models.meshpose.build_lowpoly")
        with np.load(path, allow_pickle=False) as d:
            a = {k: d[k] for k in d.files}
        return cls(vertex_ids=a["vertex_ids"].astype(np.int64), faces=a["faces"].astype(np.int64),
                   face_part=a["face_part"].astype(np.int64), face_uv=a["face_uv"],
                   vertex_part=a["vertex_part"].astype(np.int64), vertex_uv=a["vertex_uv"],
                   chart_uv=a["chart_uv"], in_chart=a["in_chart"].astype(bool),
                   flip_permutation=a["flip_permutation"].astype(np.int64) if "flip_permutation" in a else None,
                   body_name=str(a["body_name"]), info=json.loads(str(a["info"])))


def _corner_uv_table(body) -> tuple[np.ndarray, np.ndarray]:
    """(N, 25, 2) UV of every body vertex in every chart it touches, (N, 25) mask.

    Taken from the body's per-corner face UVs (if a vertex had two UVs in one chart, which
    DensePose charts avoid, one of them is kept deterministically)."""
    faces = body.faces
    fpart = np.asarray(body.face_part, np.int64)
    fuv = np.asarray(body.face_uv, np.float32)
    n = body.num_vertices
    uv = np.zeros((n, NUM_PARTS + 1, 2), np.float32)
    mask = np.zeros((n, NUM_PARTS + 1), bool)
    for k in range(3):
        uv[faces[:, k], fpart] = fuv[:, k]
        mask[faces[:, k], fpart] = True
    return uv, mask


def build_lowpoly(body, target_vertices: int = 518, hand_importance: float = 0.3,
                  foot_importance: float = 0.5, length_weight: float = 0.2,
                  min_normal_dot: float = 0.2, symmetric: bool = True) -> LowPolyTemplate:
    """Decimate the body's rest mesh into MeshPose's low-poly template (deterministic).

    Args:
        body: a ``core.body`` BodyModel with DensePose labels (face_part, face_uv, ...).
        target_vertices: vertices to keep (518 as MeshPose).
        hand_importance, foot_importance: cost multipliers for removing vertices of the
            hand (parts 3, 4) and foot (5, 6) regions (1 elsewhere); smaller = fewer left.
        length_weight: edge-length regulariser of the collapse cost (per m²), for evenly
            sized triangles.
        min_normal_dot: the flip guard of :func:`~.decimate.decimate_half_edge`.
        symmetric: pair every collapse with its mirror (body.flip_permutation).
    Returns:
        :class:`LowPolyTemplate` with ``info`` holding the parameters, per-part vertex
        counts and the distance of the body's rest vertices to the low-poly surface.
    """
    verts = body.v_template.detach().cpu().numpy().astype(np.float64)
    faces = np.asarray(body.faces, np.int64)
    vpart = np.asarray(body.vertex_part, np.int64)
    fpart = np.asarray(body.face_part, np.int64)
    importance = np.ones(len(verts))
    importance[np.isin(vpart, HAND_PARTS)] = hand_importance
    importance[np.isin(vpart, FOOT_PARTS)] = foot_importance
    mirror = np.asarray(body.flip_permutation, np.int64) if symmetric else None
    res = decimate_half_edge(verts, faces, target_vertices, importance=importance, charts=fpart,
                             mirror=mirror, length_weight=length_weight,
                             min_normal_dot=min_normal_dot)
    ids = res.vertex_ids
    face_part = fpart[res.face_source]
    table_uv, table_mask = _corner_uv_table(body)
    corner_ids = ids[res.faces]                                        # body ids (F, 3)
    ok = table_mask[corner_ids, face_part[:, None]]
    if not ok.all():
        raise RuntimeError("a low-poly face corner lies outside its face's chart (the chart "
                           "constraint of the decimation was violated)")
    face_uv = table_uv[corner_ids, face_part[:, None]]
    flip = None
    if mirror is not None and res.symmetric:
        pos = {int(b): i for i, b in enumerate(ids)}
        flip = np.array([pos[int(mirror[b])] for b in ids], np.int64)
    counts = np.bincount(vpart[ids], minlength=NUM_PARTS + 1)[1:]
    surface = _surface_distance(verts, ids, res.faces)
    info = dict(LOWPOLY_DEFAULTS, target_vertices=target_vertices, hand_importance=hand_importance,
                foot_importance=foot_importance, length_weight=length_weight,
                min_normal_dot=min_normal_dot, symmetric=bool(flip is not None),
                body=body.name, body_vertices=int(len(verts)), num_vertices=int(len(ids)),
                num_faces=int(len(res.faces)), vertices_per_part=counts.tolist(),
                rest_surface_distance_mm=surface)
    return LowPolyTemplate(vertex_ids=ids, faces=res.faces, face_part=face_part,
                           face_uv=face_uv.astype(np.float32), vertex_part=vpart[ids],
                           vertex_uv=np.asarray(body.vertex_uv, np.float32)[ids],
                           chart_uv=table_uv[ids], in_chart=table_mask[ids], flip_permutation=flip,
                           body_name=body.name, info=info)


def _surface_distance(verts: np.ndarray, ids: np.ndarray, faces: np.ndarray) -> dict:
    """Distance (mm) from every rest-pose body vertex to the low-poly surface."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts[ids].astype(np.float32)),
                        o3d.core.Tensor(faces.astype(np.uint32)))
    d = scene.compute_distance(o3d.core.Tensor(verts.astype(np.float32))).numpy() * 1000.0
    return {"mean": round(float(d.mean()), 3), "p95": round(float(np.percentile(d, 95)), 3),
            "max": round(float(d.max()), 3)}


def lowpoly_path(body_name: str) -> Path:
    from core import ASSETS_DIR

    return ASSETS_DIR / "body" / body_name / "meshpose_lowpoly.npz"


def load_lowpoly(body, path=None) -> LowPolyTemplate:
    """The low-poly template of ``body``: the committed file for the open body, else (e.g.
    SMPL) built in memory with :data:`LOWPOLY_DEFAULTS` (≈10 s, cached per body)."""
    if path is None and body.name == "open":
        path = lowpoly_path("open")
    if path is not None:
        key = ("file", str(Path(path).resolve()))
        if key not in _CACHE:
            lp = LowPolyTemplate.load(path)
            if int(lp.vertex_ids.max()) >= body.num_vertices:
                raise ValueError(f"{path} was built for a body with more vertices than "
                                 f"'{body.name}' ({body.num_vertices})")
            _CACHE[key] = lp
        return _CACHE[key]
    key = ("built", body.name, body.num_vertices)
    if key not in _CACHE:
        _CACHE[key] = build_lowpoly(body, **LOWPOLY_DEFAULTS)
    return _CACHE[key]
