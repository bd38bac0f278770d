"""Auxiliary files of the open body (used by ``core.body.build_open``; needs no anny).

Everything here is computed from the finished T-pose template, its faces, its 24-segment
skinning weights and its joint regressor, so the definitions are written down in one place:

* keypoint vertices (OpenPose nose/eyes/ears/toes/heels), picked by geometric rules;
* the 9 "extra" joints of SPIN (dataset-style hips, LSP neck and head top, MPII pelvis and
  thorax, H36M spine/jaw/head) as sparse non-negative vertex averages (rows sum to 1);
* H36M-17 and COCO-17 regressors assembled from those rows;
* DensePose-style parts (24) and per-part (U,V) charts (planar projections, per corner);
* a GraphCMR-style downsampling chain: selection matrices D and barycentric upsampling U;
* SPIN-style mean parameters (6D pose, betas 0, camera [0.9, 0, 0]);
* per-part colours.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from core.body.constants import SMPL_JOINT_NAMES
from core.render.raycast import vertex_normals

J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


def _one_hot_row(nv, ids, w=None):
    row = np.zeros(nv)
    ids = np.atleast_1d(ids)
    w = np.full(len(ids), 1.0 / len(ids)) if w is None else np.asarray(w, float)
    np.add.at(row, ids, w)
    return row / row.sum()


def keypoint_vertices(v, seg, eye_centres):
    """Vertex ids for nose, reye, leye, rear, lear, LBigToe, LSmallToe, LHeel, RBigToe,
    RSmallToe, RHeel (smplx's order)."""
    head = np.where(seg == J["head"])[0]
    mid = head[np.abs(v[head, 0]) < 0.006]
    nose = mid[np.argmax(v[mid, 2])]                       # front-most midline head vertex
    out = [nose]
    eyes = []
    for c in (eye_centres[1], eye_centres[0]):            # right eye (x<0) first, then left
        target = c + np.array([0.0, 0.0, 0.012])
        cand = head[np.sign(v[head, 0]) == np.sign(c[0])]
        eyes.append(cand[np.argmin(np.linalg.norm(v[cand] - target, axis=1))])
    out += eyes
    eye_y = float(eye_centres[:, 1].mean())
    for sign in (-1.0, 1.0):                               # right ear, left ear
        cand = head[(v[head, 1] < eye_y) & (v[head, 1] > eye_y - 0.05) & (sign * v[head, 0] > 0)]
        out.append(cand[np.argmax(sign * v[cand, 0])])     # most lateral point: the ear
    for side, sign in (("left", 1.0), ("right", -1.0)):
        foot = np.where((seg == J[f"{side}_ankle"]) | (seg == J[f"{side}_foot"]))[0]
        front = foot[v[foot, 2] > v[foot, 2].max() - 0.03]
        big = front[np.argmin(sign * v[front, 0])]         # medial front: big toe
        small = front[np.argmax(sign * v[front, 0])]       # lateral front: small toe
        low = foot[v[foot, 1] < v[foot, 1].min() + 0.03]
        heel = low[np.argmin(v[low, 2])]                   # back-most sole vertex
        out += [big, small, heel]
    return np.array(out, dtype=np.int64)


def extra_regressor(v, seg, J_reg, nose_id):
    """SPIN's 9 extra joints as rows over vertices (see module docstring)."""
    nv = len(v)
    joints = J_reg @ v
    rows = []
    for side in ("right", "left"):                         # dataset hips: thigh-section centroid
        j = J[f"{side}_hip"]
        y0 = joints[j, 1] - 0.05
        ring = np.where((seg == j) & (np.abs(v[:, 1] - y0) < 0.012))[0]
        rows.append(_one_hot_row(nv, ring))
    neck_y = joints[J["neck"], 1] + 0.02
    ring = np.where(((seg == J["neck"]) | (seg == J["spine3"])) & (np.abs(v[:, 1] - neck_y) < 0.01))[0]
    rows.append(_one_hot_row(nv, ring))                    # Neck (LSP)
    head = np.where(seg == J["head"])[0]
    top = head[np.argsort(-v[head, 1])[:6]]
    rows.append(_one_hot_row(nv, top))                     # Top of Head (LSP)
    rows.append(0.5 * (rows[0] + rows[1]))                 # Pelvis (MPII)
    rows.append(0.5 * (J_reg[J["left_shoulder"]] + J_reg[J["right_shoulder"]]))  # Thorax
    rows.append(0.5 * (J_reg[J["spine1"]] + J_reg[J["spine2"]]))                  # Spine (H36M)
    mid = head[np.abs(v[head, 0]) < 0.01]
    chin_zone = mid[v[mid, 1] < v[nose_id, 1] - 0.05]
    chin = chin_zone[np.argsort(-v[chin_zone, 2])[:4]]
    rows.append(0.5 * _one_hot_row(nv, chin) + 0.5 * J_reg[J["head"]])           # Jaw (H36M)
    rows.append(0.5 * rows[3] + 0.5 * J_reg[J["head"]])   # Head (H36M): top of head ↔ head joint
    return np.stack(rows)


def h36m_regressor(J_reg, extra):
    r = {n: J_reg[J[n]] for n in SMPL_JOINT_NAMES}
    rhip, lhip = extra[0], extra[1]
    return np.stack([
        0.5 * (rhip + lhip), lhip, r["left_knee"], r["left_ankle"], rhip, r["right_knee"],
        r["right_ankle"], extra[6], extra[5], extra[7], extra[8], r["left_shoulder"],
        r["left_elbow"], r["left_wrist"], r["right_shoulder"], r["right_elbow"], r["right_wrist"],
    ])


def coco_regressor(nv, kp_ids, J_reg, extra):
    oh = lambda i: _one_hot_row(nv, [i])  # noqa: E731
    nose, reye, leye, rear, lear = kp_ids[:5]
    r = {n: J_reg[J[n]] for n in SMPL_JOINT_NAMES}
    return np.stack([
        oh(nose), oh(leye), oh(reye), oh(lear), oh(rear), r["left_shoulder"],
        r["right_shoulder"], r["left_elbow"], r["right_elbow"], r["left_wrist"],
        r["right_wrist"], extra[1], extra[0], r["left_knee"], r["right_knee"],
        r["left_ankle"], r["right_ankle"],
    ])


# --------------------------------------------------------------------------------------
# DensePose-style parts and charts
# --------------------------------------------------------------------------------------

def densepose_parts(v, f, seg):
    """Part id 1..24 per vertex from the dominant skinning segment and a front/back split."""
    n = vertex_normals(v[None], f)[0]
    front = n[:, 2] >= 0.0
    part = np.zeros(len(v), np.int64)

    def pair(mask, back_id, front_id):
        part[mask & ~front] = back_id
        part[mask & front] = front_id

    torso = np.isin(seg, [J[k] for k in ("pelvis", "spine1", "spine2", "spine3", "neck",
                                         "left_collar", "right_collar")])
    pair(torso, 1, 2)
    part[np.isin(seg, [J["right_wrist"], J["right_hand"]])] = 3
    part[np.isin(seg, [J["left_wrist"], J["left_hand"]])] = 4
    part[np.isin(seg, [J["left_ankle"], J["left_foot"]])] = 5
    part[np.isin(seg, [J["right_ankle"], J["right_foot"]])] = 6
    pair(seg == J["right_hip"], 7, 9)
    pair(seg == J["left_hip"], 8, 10)
    pair(seg == J["right_knee"], 11, 13)
    pair(seg == J["left_knee"], 12, 14)
    pair(seg == J["left_shoulder"], 15, 17)
    pair(seg == J["right_shoulder"], 16, 18)
    pair(seg == J["left_elbow"], 19, 21)
    pair(seg == J["right_elbow"], 20, 22)
    head = seg == J["head"]
    part[head & (v[:, 0] < 0)] = 23
    part[head & (v[:, 0] >= 0)] = 24
    assert (part > 0).all()
    return part


# which two template axes each part's chart projects onto (U axis, V axis)
def chart_axes(part_id):
    if part_id in (23, 24):
        return (2, 1)          # head: side view (z, y)
    if part_id in (3, 4, 5, 6):
        return (0, 2)          # hands and feet: top view (x, z)
    return (0, 1)              # torso, legs, arms: front view (x, y)


def part_charts(v, vertex_part):
    """Per-part affine charts: (U,V) = (p[a] − lo) / (hi − lo) over the part's vertices."""
    charts = np.zeros((25, 4))
    for p in range(1, 25):
        a, b = chart_axes(p)
        pts = v[vertex_part == p]
        lo = pts[:, [a, b]].min(0)
        hi = pts[:, [a, b]].max(0)
        pad = 0.02 * (hi - lo)
        charts[p] = [lo[0] - pad[0], hi[0] + pad[0], lo[1] - pad[1], hi[1] + pad[1]]
    return charts


def eval_chart(charts, part_id, points):
    a, b = chart_axes(int(part_id))
    u0, u1, v0, v1 = charts[part_id]
    uv = np.stack([(points[:, a] - u0) / (u1 - u0), (points[:, b] - v0) / (v1 - v0)], -1)
    return np.clip(uv, 0.0, 1.0)


def face_parts_and_uv(v, f, vertex_part):
    charts = part_charts(v, vertex_part)
    fp = vertex_part[f]
    face_part = np.array([np.bincount(r, minlength=25).argmax() for r in fp])
    face_uv = np.zeros((len(f), 3, 2))
    for p in range(1, 25):
        idx = np.where(face_part == p)[0]
        if len(idx):
            face_uv[idx] = eval_chart(charts, p, v[f[idx]].reshape(-1, 3)).reshape(-1, 3, 2)
    vertex_uv = np.zeros((len(v), 2))
    for p in range(1, 25):
        m = vertex_part == p
        vertex_uv[m] = eval_chart(charts, p, v[m])
    return face_part, face_uv, vertex_uv, charts


def part_colours():
    import colorsys

    cols = np.zeros((25, 3), np.uint8)
    for p in range(1, 25):
        h = ((p * 0.61803398875) % 1.0)
        cols[p] = np.array(colorsys.hsv_to_rgb(h, 0.55, 0.95)) * 255
    cols[0] = (0, 0, 0)
    return cols


# --------------------------------------------------------------------------------------
# downsampling chain
# --------------------------------------------------------------------------------------

def adjacency_matrix(faces, n):
    """Symmetric (n,n) 0/1 vertex adjacency (scipy CSR) of a triangle mesh."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    return ((A + A.T) > 0).astype(np.float64).tocsr()


def downsample_level(v, f, target_faces, decimate, closest_point_barycentric):
    """Coarse mesh whose vertices are a subset of ``v``: (ids, coarse faces, U (n_fine, n_c))."""
    from scipy.spatial import cKDTree

    cv, cf = decimate(v, f, target_faces, preserve_border=False)
    tree = cKDTree(v)
    _, cand = tree.query(cv, k=16)
    used, ids = set(), np.zeros(len(cv), np.int64)
    for i, row in enumerate(cand):
        pick = next(int(c) for c in row if int(c) not in used)
        used.add(pick)
        ids[i] = pick
    coarse_v = v[ids]
    fid, bary = closest_point_barycentric(coarse_v, cf, v)
    rows = np.repeat(np.arange(len(v)), 3)
    U = sp.csr_matrix((bary.ravel(), (rows, cf[fid].ravel())), shape=(len(v), len(ids)))
    return ids, cf, U


def mean_params():
    """SPIN-style mean parameters: global orientation diag(1,−1,−1) (upright, facing the
    camera in the y-down camera frame) and a relaxed standing body pose (arms 50° down,
    elbows 15°, knees 5°), betas 0 (the population mean), camera [0.9, 0, 0]."""
    from scipy.spatial.transform import Rotation as Rot

    R = np.tile(np.eye(3), (24, 1, 1))
    R[0] = np.diag([1.0, -1.0, -1.0])
    R[J["left_shoulder"]] = Rot.from_euler("z", -50, degrees=True).as_matrix()
    R[J["right_shoulder"]] = Rot.from_euler("z", 50, degrees=True).as_matrix()
    R[J["left_elbow"]] = Rot.from_euler("y", -15, degrees=True).as_matrix()
    R[J["right_elbow"]] = Rot.from_euler("y", 15, degrees=True).as_matrix()
    R[J["left_knee"]] = Rot.from_euler("x", 5, degrees=True).as_matrix()
    R[J["right_knee"]] = Rot.from_euler("x", 5, degrees=True).as_matrix()
    pose6d = R[:, :, :2].reshape(24, 6)
    return pose6d.reshape(-1).astype(np.float32), np.zeros(10, np.float32), np.array([0.9, 0, 0], np.float32)


def build_auxiliaries(v_template, faces, weights, J_regressor, flip, anny_eye_centres,
                      level_target_faces, decimate, closest_point_barycentric):
    v, f = v_template, faces
    nv = len(v)
    seg = weights.argmax(1)
    kp = keypoint_vertices(v, seg, anny_eye_centres)
    extra = extra_regressor(v, seg, J_regressor, kp[0])
    h36m = h36m_regressor(J_regressor, extra)
    coco = coco_regressor(nv, kp, J_regressor, extra)
    vpart = densepose_parts(v, f, seg)
    # make parts mirror-consistent: a left vertex's mirror gets the mirrored part id
    face_part, face_uv, vertex_uv, charts = face_parts_and_uv(v, f, vpart)
    ids0, f1, U0 = downsample_level(v, f, level_target_faces[0], decimate, closest_point_barycentric)
    ids1, f2, U1 = downsample_level(v[ids0], f1, level_target_faces[1], decimate,
                                    closest_point_barycentric)
    pose, shape, cam = mean_params()
    aux = dict(
        vertex_keypoint_ids=kp,
        J_regressor_extra=extra.astype(np.float32),
        J_regressor_h36m=h36m.astype(np.float32),
        J_regressor_coco=coco.astype(np.float32),
        vertex_part=vpart.astype(np.int64),
        face_part=face_part.astype(np.int64),
        face_uv=face_uv.astype(np.float32),
        vertex_uv=vertex_uv.astype(np.float32),
        part_charts=charts.astype(np.float32),
        part_colors=part_colours(),
        flip_permutation=flip.astype(np.int64),
        down_ids_0=ids0, down_faces_1=f1.astype(np.int64),
        down_ids_1=ids1, down_faces_2=f2.astype(np.int64),
        mean_pose=pose, mean_shape=shape, mean_cam=cam,
    )
    for name, U in (("up_0", U0.tocoo()), ("up_1", U1.tocoo())):
        aux[f"{name}_row"] = U.row.astype(np.int64)
        aux[f"{name}_col"] = U.col.astype(np.int64)
        aux[f"{name}_val"] = U.data.astype(np.float32)
        aux[f"{name}_shape"] = np.array(U.shape, np.int64)
    return aux
