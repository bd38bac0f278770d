"""`JointsOnly`: a body's 24 joints and SPIN's 49 keypoints without the mesh, in few operations.

Fitting loops (SMPLify's camera and body stages, EFT and Meta-HMR steps) evaluate the body
thousands of times and need only its keypoints. This evaluator computes exactly what
:meth:`BodyModel.forward` computes for ``vertex_ids=empty, return_vertices=False`` — the
posed joints and the ≈118 vertices the 49 keypoints are picked or regressed from — but:

* with few operations, which is what a CPU spends its time on at batch 1 (the studio's
  case: tensor operations and their autograd nodes, not arithmetic): the buffers of the
  keypoint vertices are gathered once, when the evaluator is built; shape and pose blend
  shapes are one matrix product; forward kinematics is **pointer jumping** — each joint's
  transform is multiplied with the accumulated transform of the segment above it, whose
  length doubles each round, so ⌈log₂ 9⌉ = 4 batched products replace the loop of 23
  chained ones; the 49 keypoints are one (49, 24 + N) matrix applied to joints and vertices;
* with the **batch as the last axis** inside (transforms (24, 4, 4, B), vertices (N, 3, B)),
  so that at large batches every product is either one matrix multiplication (skinning
  weights, keypoint matrix, blend shapes) or elementwise arithmetic vectorised along the
  batch, never thousands of 4×4 matrix products.

The result equals the reference within float rounding (tested ≤ 1e-5, gradients too); the
reference path stays callable as ``body(..., vertex_ids=empty, return_vertices=False)``.
Get one with :meth:`BodyModel.joints_only` (built once per body, device and dtype).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["JointsOnly", "pointer_jumping_rounds", "rodrigues"]

_EPS_SQ = 1e-12
# (9, 3): skew(w) flattened row-major = _SKEW @ w
_SKEW = np.zeros((9, 3))
for (_r, _c), (_k, _s) in {(0, 1): (2, -1), (0, 2): (1, 1), (1, 0): (2, 1), (1, 2): (0, -1), (2, 0): (1, -1),
                           (2, 1): (0, 1)}.items():
    _SKEW[3 * _r + _c, _k] = _s


def rodrigues(aa: torch.Tensor, skew: torch.Tensor) -> torch.Tensor:
    """(J, 3, B) axis-angle, batch last → (J, 3, 3, B) rotation matrices, in few operations:
    ``R = cos θ · I + (sin θ / θ) · [w]× + ((1 − cos θ) / θ²) · w wᵀ`` with θ² + 10⁻¹² under
    the root (R(0) = I, finite gradients at 0; equals
    :func:`core.geometry.axis_angle_to_rotmat` within float32 rounding). ``skew``: the (9, 3)
    constant with ``skew @ w`` = [w]× flattened."""
    J, _, B = aa.shape
    t2 = (aa * aa).sum(1, keepdim=True) + _EPS_SQ                        # (J,1,B)
    th = t2.sqrt()
    a = th.sin() / th
    h = (0.5 * th).sin()
    b = 2.0 * h * h / t2
    K = (skew @ aa).reshape(J, 3, 3, B)
    outer = aa.unsqueeze(2) * aa.unsqueeze(1)                             # (J,3,3,B)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).reshape(1, 3, 3, 1)
    return th.cos().unsqueeze(1) * eye + a.unsqueeze(1) * K + b.unsqueeze(1) * outer


def pointer_jumping_rounds(parents: list[int]) -> list[np.ndarray]:
    """Ancestor indices for pointer-jumping prefix products over a tree.

    Returns one (J,) index array per round; index ``J`` means "nothing above" (an identity
    appended after the J transforms). Round r multiplies each node's accumulated transform
    with the accumulated transform of the node ``2^r`` levels up; after the last round every
    node holds the product from the root down to itself.
    """
    J = len(parents)
    anc = np.array([p if p >= 0 else J for p in parents] + [J], dtype=np.int64)  # J → itself
    rounds = []
    while (anc[:J] != J).any():
        rounds.append(anc[:J].copy())
        anc = anc[anc]
    return rounds


class JointsOnly(nn.Module):
    """The 24 posed SMPL joints and SPIN's 49 keypoints of ``body`` (see module docstring).

    ``forward(betas (B,K), body_pose (B,69), global_orient (B,3))`` (axis-angle) and
    ``from_rotmats(betas, rotmats (B,24,3,3))`` → :class:`core.body.BodyOutput` with
    ``vertices=None``, ``smpl_joints`` (B,24,3), ``joints`` (B,49,3), ``rotmats``
    (B,24,3,3) — body frame, no translation.
    """

    def __init__(self, body):
        super().__init__()
        ref = body.v_template
        ids = body.joint_vertex_ids.cpu().numpy()
        N, K = len(ids), body.num_betas
        f = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=ref.dtype, device=ref.device)  # noqa: E731
        np_ = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
        blend = [np_(body.shapedirs[ids]).reshape(N * 3, K)]                          # (3N, K)
        self.pose_correctives = body.posedirs is not None
        if self.pose_correctives:
            blend.append(np_(body.posedirs[ids]).reshape(N * 3, -1))                  # (3N, 207)
        self.register_buffer("blend", f(np.concatenate(blend, 1)))
        self.register_buffer("v_template", f(np_(body.v_template[ids]).reshape(N * 3, 1)))
        self.register_buffer("weights", f(np_(body.lbs_weights[ids])))              # (N, 24)
        self.register_buffer("J_template", f(np_(body.J_template).reshape(72, 1)))
        self.register_buffer("J_shapedirs", f(np_(body.J_shapedirs).reshape(72, K)))
        # 49 keypoints = S @ [24 joints; N vertices]
        kp_pos, extra_pos = body._kp_pos.cpu().numpy(), body._extra_pos.cpu().numpy()
        extra = np_(body.extra_regressor)
        s45 = np.zeros((24 + len(kp_pos) + len(extra), 24 + N))
        s45[np.arange(24), np.arange(24)] = 1.0
        s45[24 + np.arange(len(kp_pos)), 24 + kp_pos] = 1.0
        s45[24 + len(kp_pos) + np.arange(len(extra))[:, None], 24 + extra_pos[None, :]] = extra
        self.register_buffer("select", f(s45[body.spin49_index.cpu().numpy()]))        # (49, 24+N)
        parents = list(body.parents)
        self.register_buffer("parents", torch.as_tensor(parents[1:], device=ref.device))
        for r, anc in enumerate(pointer_jumping_rounds(parents)):
            self.register_buffer(f"round{r}", torch.as_tensor(anc, device=ref.device))
        self.num_rounds = r + 1
        self.register_buffer("skew", f(_SKEW))
        self.register_buffer("eye3", f(np.eye(3).reshape(1, 3, 3, 1)))
        self.register_buffer("eye4", f(np.eye(4).reshape(1, 4, 4, 1)))
        self.register_buffer("bottom", f(np.array([0.0, 0.0, 0.0, 1.0]).reshape(1, 1, 4, 1)))
        self.num_betas, self.num_points = K, N

    def forward(self, betas: torch.Tensor, body_pose: torch.Tensor, global_orient: torch.Tensor):
        """betas (B,K≤10), body_pose (B,69) and global_orient (B,3) axis-angle."""
        B = betas.shape[0]
        aa = torch.cat([global_orient, body_pose], 1).t().reshape(24, 3, B)
        return self._evaluate(betas, rodrigues(aa, self.skew))

    def from_rotmats(self, betas: torch.Tensor, rotmats: torch.Tensor):
        """betas (B,K≤10), rotmats (B,24,3,3) (index 0 = global orientation)."""
        return self._evaluate(betas, rotmats.permute(1, 2, 3, 0))

    def _evaluate(self, betas: torch.Tensor, R: torch.Tensor):
        """betas (B,K'), R (24,3,3,B) → BodyOutput."""
        from core.body.model import BodyOutput

        B = betas.shape[0]
        if betas.shape[1] < self.num_betas:
            betas = torch.cat([betas, betas.new_zeros(B, self.num_betas - betas.shape[1])], 1)
        bt = betas.t()                                                           # (K,B)
        J = torch.addmm(self.J_template, self.J_shapedirs, bt).reshape(24, 3, B)
        coeffs = torch.cat([bt, (R[1:] - self.eye3).reshape(-1, B)], 0) if self.pose_correctives else bt
        v = torch.addmm(self.v_template, self.blend, coeffs).reshape(self.num_points, 3, B)

        # local transforms [R | J − J_parent; 0 0 0 1] (24,4,4,B); pointer jumping to world
        rel = torch.cat([J[:1], J[1:] - J.index_select(0, self.parents)], 0)
        local = torch.cat([torch.cat([R, rel.unsqueeze(2)], 2), self.bottom.expand(24, 1, 4, B)], 1)
        ident = self.eye4.expand(1, 4, 4, B)
        world = local
        for r in range(self.num_rounds):
            above = torch.cat([world, ident], 0).index_select(0, getattr(self, f"round{r}"))
            world = (above.unsqueeze(3) * world.unsqueeze(1)).sum(2)            # above @ world, per batch
        Rw, posed = world[:, :3, :3], world[:, :3, 3]                            # (24,3,3,B), (24,3,B)
        # skinning transforms: rest points → posed points, [Rw | posed − Rw·J]
        A = torch.cat([Rw, (posed - (Rw * J.unsqueeze(1)).sum(2)).unsqueeze(2)], 2)   # (24,3,4,B)
        T = (self.weights @ A.reshape(24, 12 * B)).reshape(self.num_points, 3, 4, B)
        verts = (T[:, :, :3] * v.unsqueeze(1)).sum(2) + T[:, :, 3]                # (N,3,B)
        joints = (self.select @ torch.cat([posed, verts], 0).reshape(-1, 3 * B)).reshape(-1, 3, B)
        return BodyOutput(vertices=None, smpl_joints=posed.permute(2, 0, 1), joints=joints.permute(2, 0, 1),
                          rotmats=R.permute(3, 0, 1, 2).contiguous(), vertex_ids=None)
