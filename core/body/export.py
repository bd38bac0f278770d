"""Export a body as a SPIN/PyMAF-style ``data/`` folder.

    python -m core.body.export --out data/            # the open body, SPIN's and PyMAF's layout
    python -m core.body.export --out data/ --pkl-only

Writes the files the official SPIN and PyMAF code open for inference and SMPLify, with their
paths (``../shared/reference/official_files.md``), names, array names and shapes, so that
code runs on the open body with ``data/`` replaced by this folder:

    smpl/SMPL_NEUTRAL.pkl   plain numpy/scipy arrays (protocol 2, no chumpy): SMPL_MODEL_DIR
    gmm_08.pkl              SMPLify's prior format (means (8,69), covars (8,69,69),
                            weights (8,)), from the project's open pose prior
    J_regressor_extra.npy   (9, V) float64
    J_regressor_h36m.npy    (17, V) float64, Fortran order (as SPIN's file)
    smpl_mean_params.npz    pose (144,), shape (10,), cam (3,)
    mesh_downsampling.npz   GraphCMR layout: A, U, D, F (object arrays of scipy sparse)
    UV_data/UV_Processed.mat  DensePose layout (All_vertices, All_Faces, All_FaceIndices,
                            All_U_norm, All_V_norm)

``--gendered-copies`` also writes ``smpl/SMPL_MALE.pkl`` and ``smpl/SMPL_FEMALE.pkl`` — the
same neutral body under the names SPIN's evaluation scripts open (the open body has no
gendered variants). Every file is written atomically. ``load_body("smpl", data_dir=OUT)``
reads the folder back and gives the same body (tested).
"""
from __future__ import annotations

import argparse
import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from core.utils.io import atomic_open, atomic_savez, atomic_write_bytes


def _object_array(items):
    arr = np.empty(len(items), dtype=object)
    for i, it in enumerate(items):
        arr[i] = it
    return arr


def densepose_uv_tables(faces: np.ndarray, face_part: np.ndarray, face_uv: np.ndarray) -> dict:
    """DensePose UV_Processed tables from per-corner parts and UVs (one DP vertex per distinct
    (vertex, part, U, V) corner)."""
    keys, dp_index = {}, np.zeros(faces.shape, np.int64)
    verts, us, vs = [], [], []
    for fi in range(len(faces)):
        for c in range(3):
            u, v = (float(x) for x in np.round(face_uv[fi, c], 6))
            k = (int(faces[fi, c]), int(face_part[fi]), u, v)
            if k not in keys:
                keys[k] = len(verts)
                verts.append(k[0])
                us.append(u)
                vs.append(v)
            dp_index[fi, c] = keys[k]
    return dict(
        All_vertices=(np.array(verts, np.float64) + 1)[:, None],
        All_Faces=(dp_index + 1).astype(np.float64),
        All_FaceIndices=face_part.astype(np.float64)[:, None],
        All_U_norm=np.array(us)[:, None],
        All_V_norm=np.array(vs)[:, None],
    )


def export_body(body, out: Path, pkl_only: bool = False, gendered_copies: bool = False) -> list[Path]:
    """Write ``body`` as a SPIN/PyMAF-style data folder under ``out``; returns the paths."""
    out = Path(out)
    (out / "smpl").mkdir(parents=True, exist_ok=True)
    a = body.smpl_arrays()
    model = {
        "v_template": a["v_template"].astype(np.float64),
        "shapedirs": a["shapedirs"].astype(np.float64),
        "posedirs": a["posedirs"].astype(np.float64),
        "J_regressor": sp.csc_matrix(a["J_regressor"].astype(np.float64)),
        "weights": a["weights"].astype(np.float64),
        "kintree_table": a["kintree_table"].astype(np.int64),
        "f": a["f"].astype(np.uint32),
        "J": a["J"].astype(np.float64),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
        # not in SMPL files: the open body's OpenPose face/feet vertices (smplx hard-codes
        # SMPL's ids 332, 6260, ...; load_body('smpl') reads this key when present)
        "vertex_keypoint_ids": np.asarray(body.aux["vertex_keypoint_ids"], np.int64),
    }
    written = []
    blob = pickle.dumps(model, protocol=2)
    for name in ["SMPL_NEUTRAL.pkl"] + (["SMPL_MALE.pkl", "SMPL_FEMALE.pkl"] if gendered_copies else []):
        atomic_write_bytes(out / "smpl" / name, blob)
        written.append(out / "smpl" / name)
    if pkl_only:
        return written
    written.append(_write_gmm(out / "gmm_08.pkl"))
    for name, key in (("J_regressor_extra.npy", "extra"), ("J_regressor_h36m.npy", "h36m")):
        arr = body.regressor(key).astype(np.float64)
        if key == "h36m":
            arr = np.asfortranarray(arr)
        with atomic_open(out / name) as f:
            np.save(f, arr, allow_pickle=False)
        written.append(out / name)
    mp = body.mean_params
    atomic_savez(out / "smpl_mean_params.npz", compress=True,
                 **{k: mp[k].astype(np.float32) for k in ("pose", "shape", "cam")})
    written.append(out / "smpl_mean_params.npz")
    levels, ups = body.downsampling()
    nv = body.num_vertices
    sizes = [nv, len(levels[0][0]), len(levels[1][0])]
    faces = [body.faces, levels[0][1], levels[1][1]]
    from core.body.build_aux import adjacency_matrix

    A = [adjacency_matrix(f, n) for f, n in zip(faces, sizes)]
    D = [sp.csr_matrix((np.ones(sizes[i + 1]), (np.arange(sizes[i + 1]), levels[i][0])),
                       shape=(sizes[i + 1], sizes[i])) for i in range(2)]
    # GraphCMR's layout: object arrays of scipy sparse matrices (pickled inside the .npz, as
    # in the original file; load_body reads them back through the restricted unpickler)
    atomic_savez(out / "mesh_downsampling.npz", compress=True,
                 A=_object_array(A), U=_object_array([u.tocsr() for u in ups]),
                 D=_object_array(D), F=_object_array([f.astype(np.uint32) for f in faces]))
    written.append(out / "mesh_downsampling.npz")
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, densepose_uv_tables(body.faces, body.face_part, body.face_uv))
    (out / "UV_data").mkdir(exist_ok=True)
    atomic_write_bytes(out / "UV_data" / "UV_Processed.mat", buf.getvalue())
    written.append(out / "UV_data" / "UV_Processed.mat")
    return written


def _write_gmm(path: Path) -> Path:
    """The project's open pose prior in SMPLify's ``gmm_08.pkl`` format (a pickled dict of
    plain arrays: means (8, 69), covars (8, 69, 69), weights (8,))."""
    from core.fitting.priors import OPEN_PRIOR_PATH

    with np.load(OPEN_PRIOR_PATH, allow_pickle=False) as d:
        gmm = {k: np.asarray(d[k], np.float64) for k in ("means", "covars", "weights")}
    atomic_write_bytes(path, pickle.dumps(gmm, protocol=2))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description="Export the open body as a SPIN/PyMAF data folder.")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--pkl-only", action="store_true", help="write only smpl/SMPL_NEUTRAL.pkl")
    ap.add_argument("--gendered-copies", action="store_true",
                    help="also write the neutral body as smpl/SMPL_MALE.pkl and SMPL_FEMALE.pkl (for evaluation "
                         "scripts that open them; the open body has no gendered variants)")
    args = ap.parse_args(argv)
    from core.body import load_body

    for p in export_body(load_body("open"), args.out, args.pkl_only, args.gendered_copies):
        print(p)


if __name__ == "__main__":
    main()
