"""`BodyModel`: one SMPL-layout body (open or SMPL) with subset evaluation.

The forward pass is SMPL's: shape blend shapes, joint regression on the shaped template,
forward kinematics over the 24-joint tree, pose correctives (skipped when they are all zero,
as for the open body), linear blend skinning. Results equal ``smplx.SMPL`` on the same arrays
(tested). Its one addition is ``vertex_ids``: only those vertices — plus the few that SPIN's
49 keypoints need — are shaped and skinned, which is what SMPLify and PyMAF's intermediate
levels need; joints never need the full mesh because the 24 rest joints are regressed from
precomputed ``J_regressor @ v_template`` and ``J_regressor @ shapedirs``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from core.body.constants import SPIN49_SOURCE, SMPL_PARENTS
from core.geometry import axis_angle_to_rotmat


@dataclass
class BodyOutput:
    """Outputs of :class:`BodyModel` (batch first).

    vertices: (B,V,3), or (B,K,3) when ``vertex_ids`` (K,) was given.
    smpl_joints: (B,24,3) SMPL kinematic joints (posed).
    joints: (B,49,3) SPIN's 49 keypoints (OpenPose-25 then the 24 "GT" joints).
    rotmats: (B,24,3,3) the joint rotations used (index 0 = global orientation).
    vertex_ids: the ids of ``vertices`` (None = all).
    """

    vertices: torch.Tensor
    smpl_joints: torch.Tensor
    joints: torch.Tensor
    rotmats: torch.Tensor
    vertex_ids: torch.Tensor | None = None


def _rot_input(x: torch.Tensor | None, n_joints: int, batch: int, ref: torch.Tensor, name: str):
    """Accept (B,n,3,3), (B,n*9), (B,n*3) axis-angle, or (B,n,3) axis-angle."""
    if x is None:
        return torch.eye(3, dtype=ref.dtype, device=ref.device).expand(batch, n_joints, 3, 3)
    x = torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
    if x.dim() >= 3 and x.shape[-2:] == (3, 3):     # (B,n,3,3) or (B,3,3) for one joint
        if x[0].numel() != n_joints * 9:
            raise ValueError(f"{name}: expected (B,{n_joints},3,3) matrices, got {tuple(x.shape)}")
        return x.reshape(x.shape[0], n_joints, 3, 3)
    if x.dim() == 2 and x.shape[1] == n_joints * 3:
        return axis_angle_to_rotmat(x.reshape(-1, 3)).reshape(x.shape[0], n_joints, 3, 3)
    if x.dim() == 3 and x.shape[1:] == (n_joints, 3):
        return axis_angle_to_rotmat(x.reshape(-1, 3)).reshape(x.shape[0], n_joints, 3, 3)
    if x.dim() == 2 and x.shape[1] == n_joints * 9:
        return x.reshape(x.shape[0], n_joints, 3, 3)
    raise ValueError(
        f"{name}: expected rotation matrices (B,{n_joints},3,3) or axis-angle (B,{n_joints * 3}), "
        f"got shape {tuple(x.shape)}"
    )


def batch_rigid_transform(rotmats: torch.Tensor, joints: torch.Tensor, parents: list[int]):
    """Forward kinematics. rotmats (B,J,3,3) local, joints (B,J,3) rest.

    Returns posed joints (B,J,3) and the relative transforms (B,J,4,4) that map rest-pose
    points (expressed in the model frame) to posed points."""
    B, nj = joints.shape[:2]
    rel = joints.clone()
    rel[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    local = torch.cat([rotmats, rel.unsqueeze(-1)], dim=-1)              # (B,J,3,4)
    bottom = local.new_tensor([0, 0, 0, 1]).expand(B, nj, 1, 4)
    local = torch.cat([local, bottom], dim=-2)                           # (B,J,4,4)
    chain = [local[:, 0]]
    for j in range(1, nj):
        chain.append(chain[parents[j]] @ local[:, j])
    world = torch.stack(chain, dim=1)
    posed = world[:, :, :3, 3]
    # subtract the rest joint location: T_rel = world · [I, −j; 0, 1]
    corr = torch.einsum("bjik,bjk->bji", world[:, :, :3, :3], joints)
    rel_t = world.clone()
    rel_t[:, :, :3, 3] = posed - corr
    return posed, rel_t


class BodyModel(nn.Module):
    """SMPL-layout body model; see module docstring and ``docs/CONTRACTS.md``.

    Build with :func:`core.body.load_body`. Arrays: ``v_template`` (V,3), ``shapedirs``
    (V,3,K), ``posedirs`` (V,3,207) or None when zero, ``J_regressor`` (24,V), ``weights``
    (V,24), ``faces`` (F,3); auxiliaries in ``aux`` (see ``core.body.loading``).
    """

    def __init__(self, name: str, v_template, shapedirs, posedirs, J_regressor, weights,
                 faces, aux: dict, num_betas: int = 10):
        super().__init__()
        self.name = name
        f32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))  # noqa: E731
        shapedirs = np.asarray(shapedirs)[:, :, :num_betas]
        self.num_betas = shapedirs.shape[-1]
        self.num_vertices = int(np.asarray(v_template).shape[0])
        self.faces = np.asarray(faces, dtype=np.int64)
        self.parents = list(SMPL_PARENTS)
        self.register_buffer("v_template", f32(v_template))
        self.register_buffer("shapedirs", f32(shapedirs))
        Jr = np.asarray(J_regressor, dtype=np.float64)
        self.register_buffer("J_regressor", f32(Jr))
        self.register_buffer("J_template", f32(Jr @ np.asarray(v_template, np.float64)))
        self.register_buffer("J_shapedirs", f32(np.einsum("jv,vck->jck", Jr, np.asarray(shapedirs, np.float64))))
        self.register_buffer("lbs_weights", f32(weights))
        self.register_buffer("faces_tensor", torch.as_tensor(self.faces))
        if posedirs is not None and np.any(np.asarray(posedirs)):
            pd = np.asarray(posedirs, dtype=np.float32)
            self.register_buffer("posedirs", torch.as_tensor(pd.reshape(self.num_vertices, 3, -1)))
        else:
            self.posedirs = None
        self.aux = aux
        # SPIN-49 keypoints: [24 joints, 11 vertex picks, 9 extra rows] → 49
        kp_ids = np.asarray(aux["vertex_keypoint_ids"], dtype=np.int64)
        extra = np.asarray(aux["J_regressor_extra"], dtype=np.float64)
        self.register_buffer("kp_vertex_ids", torch.as_tensor(kp_ids))
        extra_support = np.where(np.abs(extra).sum(0) > 0)[0]
        self.register_buffer("extra_support", torch.as_tensor(extra_support))
        self.register_buffer("extra_regressor", f32(extra[:, extra_support]))
        src = [s if s < 35 else s - 10 for s in SPIN49_SOURCE]   # no finger tips in our set
        self.register_buffer("spin49_index", torch.as_tensor(src, dtype=torch.long))
        needed = np.union1d(kp_ids, extra_support)
        self.register_buffer("joint_vertex_ids", torch.as_tensor(needed))
        self.register_buffer("_kp_pos", torch.as_tensor(np.searchsorted(needed, kp_ids)))
        self.register_buffer("_extra_pos", torch.as_tensor(np.searchsorted(needed, extra_support)))

    # ------------------------------------------------------------------ attributes
    @property
    def mean_params(self) -> dict:
        return {k: np.asarray(self.aux[f"mean_{k}"]) for k in ("pose", "shape", "cam")}

    @property
    def sampling_vertex_ids(self) -> np.ndarray:
        """≈431 vertex ids (the two-level downsampling's selection): PyMAF's points."""
        if "down_ids_0" not in self.aux:
            raise FileNotFoundError(
                f"body '{self.name}' has no mesh downsampling (mesh_downsampling.npz); PyMAF's "
                "mesh-aligned sampling needs it. It comes with PyMAF's data (GraphCMR); the "
                "open body ships its own.")
        return np.asarray(self.aux["down_ids_0"])[np.asarray(self.aux["down_ids_1"])]

    @property
    def flip_permutation(self) -> np.ndarray:
        return np.asarray(self.aux["flip_permutation"])

    @property
    def vertex_part(self) -> np.ndarray:
        return self._need("vertex_part", "UV_Processed.mat (DensePose UV data)")

    @property
    def face_part(self) -> np.ndarray:
        return self._need("face_part", "UV_Processed.mat (DensePose UV data)")

    @property
    def face_uv(self) -> np.ndarray:
        return self._need("face_uv", "UV_Processed.mat (DensePose UV data)")

    @property
    def vertex_uv(self) -> np.ndarray:
        return self._need("vertex_uv", "UV_Processed.mat (DensePose UV data)")

    @property
    def part_colors(self) -> np.ndarray:
        return np.asarray(self.aux["part_colors"])

    def _need(self, key, source):
        if key not in self.aux:
            raise FileNotFoundError(
                f"body '{self.name}' has no {key}: it is derived from {source}, which was not "
                "found in the data folder. The open body (load_body('open')) ships its own.")
        return np.asarray(self.aux[key])

    def regressor(self, name: str) -> np.ndarray:
        """(J,V) keypoint regressor: 'smpl24', 'extra' (SPIN's 9), 'h36m' (17), 'coco' (17)."""
        key = {"smpl24": None, "extra": "J_regressor_extra", "h36m": "J_regressor_h36m",
               "coco": "J_regressor_coco"}
        if name not in key:
            raise KeyError(f"unknown regressor {name!r}; choose from {sorted(key)}")
        if name == "smpl24":
            return self.J_regressor.cpu().numpy()
        return self._need(key[name], f"{key[name]}.npy")

    def downsampling(self):
        """[(ids_0 (≈1723,), faces_1), (ids_1 (≈431,) into level 1, faces_2)] and the
        upsampling matrices [U_0 (V, ≈1723), U_1 (≈1723, ≈431)] as scipy sparse."""
        import scipy.sparse as sp

        a = self.aux
        ups = []
        for name in ("up_0", "up_1"):
            ups.append(sp.csr_matrix((a[f"{name}_val"], (a[f"{name}_row"], a[f"{name}_col"])),
                                     shape=tuple(a[f"{name}_shape"])))
        return ([(np.asarray(a["down_ids_0"]), np.asarray(a["down_faces_1"])),
                 (np.asarray(a["down_ids_1"]), np.asarray(a["down_faces_2"]))], ups)

    # ------------------------------------------------------------------ forward
    def forward(self, betas=None, body_pose=None, global_orient=None, transl=None,
                vertex_ids=None, return_vertices: bool = True) -> BodyOutput:
        """Pose the body.

        betas (B,K≤10); body_pose (B,23,3,3) or (B,69) axis-angle; global_orient (B,1,3,3)
        or (B,3); transl (B,3) or None; vertex_ids (K,) long or None (all vertices).
        """
        ref = self.v_template
        B = next((t.shape[0] for t in (betas, body_pose, global_orient, transl)
                  if t is not None), 1)
        if betas is None:
            betas = ref.new_zeros(B, self.num_betas)
        betas = torch.as_tensor(betas, dtype=ref.dtype, device=ref.device)
        if betas.dim() != 2 or betas.shape[1] > self.num_betas:
            raise ValueError(f"betas: expected (B, ≤{self.num_betas}), got {tuple(betas.shape)}")
        if betas.shape[1] < self.num_betas:
            betas = torch.cat([betas, betas.new_zeros(B, self.num_betas - betas.shape[1])], 1)
        go = _rot_input(global_orient, 1, B, ref, "global_orient")
        bp = _rot_input(body_pose, 23, B, ref, "body_pose")
        rotmats = torch.cat([go, bp], dim=1)
        if rotmats.shape[0] != B:
            raise ValueError(f"batch sizes differ: betas {B}, poses {rotmats.shape[0]}")

        J_rest = self.J_template + torch.einsum("jck,bk->bjc", self.J_shapedirs, betas)
        smpl_joints, A = batch_rigid_transform(rotmats, J_rest, self.parents)

        # vertices to compute: requested ∪ those the 49 keypoints need
        jv = self.joint_vertex_ids
        if vertex_ids is None:
            ids = None
        else:
            vertex_ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=ref.device)
            ids = torch.cat([jv, vertex_ids]) if return_vertices else jv
        verts = self._skin(betas, rotmats, A, ids)
        if vertex_ids is None:
            jverts = verts[:, jv]
            out_verts = verts
        else:
            jverts = verts[:, : len(jv)]
            out_verts = verts[:, len(jv):] if return_vertices else None
        kp = jverts[:, self._kp_pos]
        extra = torch.einsum("jv,bvc->bjc", self.extra_regressor, jverts[:, self._extra_pos])
        set45 = torch.cat([smpl_joints, kp, extra], dim=1)
        joints = set45[:, self.spin49_index]
        if transl is not None:
            t = torch.as_tensor(transl, dtype=ref.dtype, device=ref.device).reshape(B, 1, 3)
            smpl_joints = smpl_joints + t
            joints = joints + t
            if out_verts is not None:
                out_verts = out_verts + t
        return BodyOutput(vertices=out_verts, smpl_joints=smpl_joints, joints=joints,
                          rotmats=rotmats, vertex_ids=vertex_ids)

    def joints_only(self):
        """The :class:`core.body.joints_only.JointsOnly` evaluator of this body (the 24 joints
        and 49 keypoints without the mesh, in few operations), built once per device/dtype."""
        from core.body.joints_only import JointsOnly

        key = (self.v_template.device, self.v_template.dtype)
        cache = self.__dict__.setdefault("_joints_only", {})
        if key not in cache:
            cache[key] = JointsOnly(self)
        return cache[key]

    def _skin(self, betas, rotmats, A, ids):
        vt = self.v_template if ids is None else self.v_template[ids]
        sd = self.shapedirs if ids is None else self.shapedirs[ids]
        w = self.lbs_weights if ids is None else self.lbs_weights[ids]
        v = vt + torch.einsum("vck,bk->bvc", sd, betas)
        if self.posedirs is not None:
            pd = self.posedirs if ids is None else self.posedirs[ids]
            eye = torch.eye(3, dtype=v.dtype, device=v.device)
            pose_feat = (rotmats[:, 1:] - eye).reshape(v.shape[0], -1)
            v = v + torch.einsum("vcp,bp->bvc", pd, pose_feat)
        T = torch.einsum("vj,bjxy->bvxy", w, A[:, :, :3, :])      # (B,V,3,4)
        return torch.einsum("bvxy,bvy->bvx", T[..., :3], v) + T[..., 3]

    def smplx_model(self):
        """The same body as an ``smplx.SMPL`` module (arrays passed via ``data_struct``)."""
        from core.body.loading import smplx_from_arrays

        return smplx_from_arrays(self.smpl_arrays())

    def smpl_arrays(self) -> dict:
        """The body's arrays under SMPL's file names (v_template, shapedirs, posedirs, ...)."""
        nv = self.num_vertices
        posedirs = (self.posedirs.cpu().numpy() if self.posedirs is not None
                    else np.zeros((nv, 3, 207), np.float32))
        kintree = np.stack([np.array(self.parents, np.int64), np.arange(24)])
        kintree[0, 0] = 4294967295
        return dict(
            v_template=self.v_template.cpu().numpy(), shapedirs=self.shapedirs.cpu().numpy(),
            posedirs=posedirs, J_regressor=self.J_regressor.cpu().numpy(),
            weights=self.lbs_weights.cpu().numpy(), kintree_table=kintree,
            f=self.faces.astype(np.uint32), J=self.J_template.cpu().numpy(),
        )
