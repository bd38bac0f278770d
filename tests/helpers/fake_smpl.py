"""A fake SMPL data folder with the official file names, layouts and shapes (random values).

Real SMPL files are licensed and never available in tests; this writes files that *look*
like them to the loaders: ``SMPL_NEUTRAL.pkl`` (protocol-2 pickle, ``J_regressor`` as scipy
CSC, ``shapedirs`` optionally wrapped in a chumpy-like ``Ch`` object as real files have),
``J_regressor_extra.npy`` (9,6890), ``J_regressor_h36m.npy`` (17,6890, Fortran order),
``smpl_mean_params.npz``, ``mesh_downsampling.npz`` (GraphCMR: object arrays of sparse).
"""
from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from core.body.constants import SMPL_PARENTS

NV, NF = 6890, 13776


def _fake_chumpy_ch(arr):
    """An object that pickles as ``chumpy.ch.Ch`` with state {'x': arr} (like SMPL pkls)."""
    mod_pkg = sys.modules.setdefault("chumpy", types.ModuleType("chumpy"))
    mod = types.ModuleType("chumpy.ch")

    class Ch:  # noqa: D401 - stand-in
        pass

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    mod.Ch = Ch
    sys.modules["chumpy.ch"] = mod
    mod_pkg.ch = mod
    obj = Ch()
    obj.__dict__["x"] = arr
    return obj


def _cleanup_fake_chumpy():
    for name in ("chumpy.ch", "chumpy"):
        sys.modules.pop(name, None)


def _row_stochastic(rng, rows, cols, nnz):
    m = np.zeros((rows, cols))
    for r in range(rows):
        idx = rng.choice(cols, nnz, replace=False)
        w = rng.random(nnz)
        m[r, idx] = w / w.sum()
    return m


def write_fake_smpl_dir(path, seed: int = 0, chumpy: bool = True, with_downsampling: bool = True,
                        num_betas: int = 10) -> Path:
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    v = rng.normal(scale=[0.2, 0.5, 0.1], size=(NV, 3))
    faces = rng.integers(0, NV, size=(NF, 3)).astype(np.uint32)
    weights = _row_stochastic(rng, NV, 24, 3)
    J = _row_stochastic(rng, 24, NV, 8)
    shapedirs = rng.normal(scale=0.01, size=(NV, 3, num_betas))
    model = {
        "v_template": v,
        "shapedirs": _fake_chumpy_ch(shapedirs) if chumpy else shapedirs,
        "posedirs": rng.normal(scale=1e-3, size=(NV, 3, 207)),
        "J_regressor": sp.csc_matrix(J),
        "weights": weights,
        "kintree_table": np.stack([np.array(SMPL_PARENTS, np.int64) % 4294967296,
                                   np.arange(24)]).astype(np.int64),
        "f": faces,
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    model["kintree_table"][0, 0] = 4294967295
    try:
        (path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps(model, protocol=2))
    finally:
        if chumpy:
            _cleanup_fake_chumpy()
    np.save(path / "J_regressor_extra.npy", _row_stochastic(rng, 9, NV, 10))
    np.save(path / "J_regressor_h36m.npy", np.asfortranarray(_row_stochastic(rng, 17, NV, 10)))
    np.savez(path / "smpl_mean_params.npz", pose=rng.normal(size=144).astype(np.float32),
             shape=rng.normal(size=10).astype(np.float32), cam=np.array([0.9, 0, 0], np.float32))
    if with_downsampling:
        sizes = [NV, 1723, 431]
        D, U, A, F = [], [], [], [faces]
        for i in range(2):
            ids = np.sort(rng.choice(sizes[i], sizes[i + 1], replace=False))
            D.append(sp.csr_matrix((np.ones(sizes[i + 1]), (np.arange(sizes[i + 1]), ids)),
                                   shape=(sizes[i + 1], sizes[i])))
            U.append(sp.csr_matrix(_row_stochastic(rng, sizes[i], sizes[i + 1], 3)))
            F.append(rng.integers(0, sizes[i + 1], size=(2 * sizes[i + 1], 3)).astype(np.uint32))
        for n in sizes:
            A.append(sp.identity(n, format="csr"))

        def obj(items):
            arr = np.empty(len(items), dtype=object)
            for k, it in enumerate(items):
                arr[k] = it
            return arr

        np.savez(path / "mesh_downsampling.npz", A=obj(A), U=obj(U), D=obj(D), F=obj(F))
    return path
