"""Half-edge-collapse decimation with quadric errors, per-vertex importance, chart (part)
constraints and optional left/right symmetry. Pure NumPy + heapq, deterministic.

Why half-edge collapses: every collapse ``u → v`` removes ``u`` and keeps ``v`` where it
is, so the surviving vertices are a *subset* of the input vertices (MeshPose's low-poly
vertex positions are then a selection of the full mesh's, for any pose and shape).

Cost of ``u → v`` (Garland–Heckbert quadrics, restricted to the kept position):
``importance[u] · (v̄ᵀ (Q_u + Q_v) v̄ + length_weight · |x_u − x_v|²)``, where ``Q`` sums the
plane quadrics of the faces around a vertex (accumulated over previous collapses) and the
edge-length term keeps triangles of similar size (plain QEM would leave large flat
regions, e.g. the thighs, with very few vertices). A small importance (hands, feet) makes
a region collapse early, so it ends with few vertices.

A collapse is allowed only if
1. the charts (face labels) around ``u`` are a subset of those around ``v`` — then every
   face keeps all its corners inside its own chart, so each face of the result has one
   label and exact per-corner chart coordinates;
2. the link condition holds (the edge's two opposite vertices are the only common
   neighbours) — the mesh stays a 2-manifold of the same genus;
3. no face around ``u`` flips or degenerates (``n_new · n_old > min_normal_dot``).

With ``mirror`` (a vertex permutation that is an involution and maps the mesh onto
itself), every collapse is paired with its mirror image so the result is symmetric.
Collapses across the symmetry plane (``mirror[u] == v``) are not allowed.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

__all__ = ["DecimationResult", "decimate_half_edge"]


@dataclass
class DecimationResult:
    """vertex_ids: (K,) sorted ids of the kept input vertices.
    faces: (G, 3) triangles indexing ``vertex_ids`` (0..K−1), input winding kept.
    face_source: (G,) the input face each output face descends from (its label carries over).
    collapses: number of half-edge collapses done.
    symmetric: True when the kept set and faces map onto themselves under ``mirror``."""

    vertex_ids: np.ndarray
    faces: np.ndarray
    face_source: np.ndarray
    collapses: int
    symmetric: bool


def _plane_quadrics(verts: np.ndarray, faces: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(F, 4, 4) area-weighted plane quadrics ``w·A·p pᵀ`` with p = (n, −n·x0)."""
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(cross, axis=1)
    n = cross / np.maximum(area2, 1e-20)[:, None]
    d = -(n * tri[:, 0]).sum(1)
    p = np.concatenate([n, d[:, None]], 1)
    return (0.5 * area2 * weights)[:, None, None] * p[:, :, None] * p[:, None, :]


class _Mesh:
    """Mutable triangle mesh for collapses (faces keep their ids; dead ones are flagged)."""

    def __init__(self, verts, faces, charts, importance, length_weight, min_normal_dot):
        self.x = np.asarray(verts, np.float64)
        self.f = np.array(faces, np.int64)
        self.face_alive = np.ones(len(self.f), bool)
        self.alive = np.ones(len(self.x), bool)
        self.vf = [set() for _ in range(len(self.x))]
        for fi, tri in enumerate(self.f):
            for a in tri:
                self.vf[a].add(fi)
        self.charts = charts
        self.imp = importance
        self.length_weight = length_weight
        self.min_dot = min_normal_dot
        fw = importance[self.f].mean(1)
        fq = _plane_quadrics(self.x, self.f, fw)
        self.Q = np.zeros((len(self.x), 4, 4))
        np.add.at(self.Q, self.f[:, 0], fq)
        np.add.at(self.Q, self.f[:, 1], fq)
        np.add.at(self.Q, self.f[:, 2], fq)
        self.version = np.zeros(len(self.x), np.int64)

    def neighbours(self, a: int) -> set:
        out = set()
        for fi in self.vf[a]:
            out.update(self.f[fi].tolist())
        out.discard(a)
        return out

    def cost(self, u: int, v: int) -> float:
        xv = np.append(self.x[v], 1.0)
        q = float(xv @ (self.Q[u] + self.Q[v]) @ xv)
        length2 = float(((self.x[u] - self.x[v]) ** 2).sum())
        return float(self.imp[u]) * (max(q, 0.0) + self.length_weight * length2)

    def valid(self, u: int, v: int) -> bool:
        if not (self.alive[u] and self.alive[v]):
            return False
        if not self.charts[u] <= self.charts[v]:
            return False
        shared = self.vf[u] & self.vf[v]
        if len(shared) != 2:
            return False
        opposite = set()
        for fi in shared:
            opposite.update(self.f[fi].tolist())
        opposite -= {u, v}
        if self.neighbours(u) & self.neighbours(v) != opposite:
            return False
        # the collapse must not pinch the mesh into a tetrahedron or less
        if len(self.neighbours(v) | self.neighbours(u)) <= 4:
            return False
        for fi in self.vf[u] - shared:
            tri = self.f[fi]
            old = self.x[tri]
            new = old.copy()
            new[tri == u] = self.x[v]
            n_old = np.cross(old[1] - old[0], old[2] - old[0])
            n_new = np.cross(new[1] - new[0], new[2] - new[0])
            len_old, len_new = np.linalg.norm(n_old), np.linalg.norm(n_new)
            if len_new < 1e-12 or len_old < 1e-12:
                return False
            if float(n_old @ n_new) < self.min_dot * len_old * len_new:
                return False
        return True

    def snapshot(self, u: int, v: int) -> tuple:
        """What :meth:`collapse` (u → v) changes, to undo it with :meth:`restore`."""
        faces = sorted(self.vf[u] | self.vf[v])
        verts = sorted(set(self.f[faces].ravel().tolist()) | {u, v})
        return (faces, self.f[faces].copy(), self.face_alive[faces].copy(),
                {a: set(self.vf[a]) for a in verts}, self.Q[v].copy(),
                int(self.version[u]), int(self.version[v]), u, v)

    def restore(self, snap: tuple) -> None:
        faces, rows, alive, vf, q, ver_u, ver_v, u, v = snap
        self.f[faces] = rows
        self.face_alive[faces] = alive
        for a, fs in vf.items():
            self.vf[a] = fs
        self.Q[v] = q
        self.alive[u] = True
        self.version[u], self.version[v] = ver_u, ver_v

    def collapse(self, u: int, v: int) -> None:
        shared = self.vf[u] & self.vf[v]
        for fi in shared:
            self.face_alive[fi] = False
            for a in self.f[fi]:
                self.vf[a].discard(fi)
        for fi in list(self.vf[u]):
            self.f[fi][self.f[fi] == u] = v
            self.vf[v].add(fi)
        self.vf[u] = set()
        self.alive[u] = False
        self.Q[v] += self.Q[u]
        self.version[v] += 1
        self.version[u] += 1


def decimate_half_edge(verts, faces, target_vertices: int, importance=None, charts=None,
                       mirror=None, length_weight: float = 0.05,
                       min_normal_dot: float = 0.2) -> DecimationResult:
    """Decimate a closed manifold triangle mesh to ``target_vertices`` by half-edge collapses.

    Args:
        verts: (N, 3) vertex positions (e.g. the body template, metres).
        faces: (F, 3) triangles of a closed 2-manifold.
        target_vertices: number of vertices to keep (with ``mirror``, when one vertex is
            left to remove it is taken from the symmetry plane).
        importance: (N,) > 0, multiplies the cost of removing a vertex (default 1).
        charts: (F,) integer face labels (e.g. DensePose parts); collapses keep every face's
            corners inside its label's region (see module docstring). None: no constraint.
        mirror: (N,) vertex permutation for left/right symmetry, or None.
        length_weight: weight of the squared edge length in the cost (units of the quadric
            error per unit length²).
        min_normal_dot: smallest allowed cosine between a face normal before and after.
    Returns:
        :class:`DecimationResult`.
    """
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(faces, np.int64)
    N = len(verts)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise ValueError(f"verts must be (N, 3), got {verts.shape}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= N:
        raise ValueError(f"faces must be (F, 3) indices into {N} vertices")
    if not 4 <= target_vertices <= N:
        raise ValueError(f"target_vertices must be in [4, {N}], got {target_vertices}")
    importance = np.ones(N) if importance is None else np.asarray(importance, np.float64)
    if importance.shape != (N,) or (importance <= 0).any():
        raise ValueError("importance must be (N,) and positive")
    labels = np.zeros(len(faces), np.int64) if charts is None else np.asarray(charts, np.int64)
    if labels.shape != (len(faces),):
        raise ValueError(f"charts must be one label per face ({len(faces)},), got {labels.shape}")
    vertex_charts = [set() for _ in range(N)]
    for fi, tri in enumerate(faces):
        for a in tri:
            vertex_charts[a].add(int(labels[fi]))
    vertex_charts = [frozenset(c) for c in vertex_charts]
    if mirror is not None:
        mirror = np.asarray(mirror, np.int64)
        if mirror.shape != (N,) or not np.array_equal(mirror[mirror], np.arange(N)):
            raise ValueError("mirror must be an involutive permutation of the vertices")

    mesh = _Mesh(verts, faces, vertex_charts, importance, length_weight, min_normal_dot)
    heap: list = []

    def push_edges_of(a: int) -> None:
        for b in sorted(mesh.neighbours(a)):
            for s, t in ((a, b), (b, a)):
                if mirror is not None and mirror[s] == t:
                    continue
                heapq.heappush(heap, (mesh.cost(s, t), s, t, mesh.version[s], mesh.version[t]))

    edges = set()
    for tri in faces:
        for i in range(3):
            a, b = int(tri[i]), int(tri[(i + 1) % 3])
            edges.add((min(a, b), max(a, b)))
    for a, b in sorted(edges):
        for s, t in ((a, b), (b, a)):
            if mirror is not None and mirror[s] == t:
                continue
            heap.append((mesh.cost(s, t), s, t, 0, 0))
    heapq.heapify(heap)

    alive = N
    collapses = 0
    while alive > target_vertices and heap:
        _, u, v, su, sv = heapq.heappop(heap)
        if mesh.version[u] != su or mesh.version[v] != sv or not mesh.valid(u, v):
            continue
        if mirror is None or (mirror[u] == u and mirror[v] == v):
            mesh.collapse(u, v)
            alive -= 1
            collapses += 1
            push_edges_of(v)
            continue
        mu, mv = int(mirror[u]), int(mirror[v])
        if mu == u or mv == v or {mu, mv} & {u, v}:
            continue  # half on the symmetry plane, or overlapping its mirror: not pairable
        if alive - 2 < target_vertices or not mesh.valid(mu, mv):
            continue  # a pair would overshoot (wait for a collapse on the plane) or is blocked
        snap = mesh.snapshot(u, v)
        mesh.collapse(u, v)
        if not mesh.valid(mu, mv):      # the two collapses interfere (near the plane): undo
            mesh.restore(snap)
            continue
        mesh.collapse(mu, mv)
        alive -= 2
        collapses += 2
        push_edges_of(v)
        push_edges_of(mv)

    kept = np.flatnonzero(mesh.alive)
    remap = -np.ones(N, np.int64)
    remap[kept] = np.arange(len(kept))
    face_ids = np.flatnonzero(mesh.face_alive)
    out_faces = remap[mesh.f[face_ids]]
    if (out_faces < 0).any():
        raise RuntimeError("decimation left a face on a removed vertex (internal error)")
    symmetric = False
    if mirror is not None:
        kept_set = set(kept.tolist())
        if {int(mirror[k]) for k in kept} == kept_set:
            tris = {tuple(sorted(t)) for t in mesh.f[face_ids].tolist()}
            symmetric = {tuple(sorted(mirror[t].tolist())) for t in mesh.f[face_ids]} == tris
    return DecimationResult(kept, out_faces, face_ids, collapses, symmetric)
