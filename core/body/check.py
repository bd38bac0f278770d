"""Check a SMPL / SPIN / PyMAF data folder: which files are there, readable, and what they enable.

    python -m core.body.check ~/SPIN/data          # or a repository root, or a flat folder

Prints one line per file the official code reads (``found`` / ``missing`` / ``unreadable``
with the reason) and what it enables, then whether the SMPL body loads. Every file is read
the way the studio reads it (pickles through the restricted unpickler, GraphCMR's
``mesh_downsampling.npz`` only its ``D``, ``U``, ``F`` members); nothing is written. Exit
status 0 when the body loads, 1 when it does not, 2 for a bad argument.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from core.body.loading import (MODEL_FILE_NAMES, UV_FILE_NAMES, _find, data_folder, load_npz_with_object_arrays,
                                load_smpl_dir, read_smpl_model)

__all__ = ["FileStatus", "check_folder", "main"]


@dataclass(frozen=True)
class FileStatus:
    """name: the file's usual name; path: where it was found (None if missing); state:
    "found" / "missing" / "unreadable"; detail: the reason or what was read; enables: what
    it gives; required: the SMPL body cannot load without it."""

    name: str
    path: Optional[Path]
    state: str
    detail: str
    enables: str
    required: bool = False


def _read_model(path: Path) -> str:
    arrays = read_smpl_model(path)
    v, sd = np.asarray(arrays["v_template"]), np.asarray(arrays["shapedirs"])
    return f"{v.shape[0]} vertices, {sd.shape[-1]} shape PCs"


def _read_npy(path: Path) -> str:
    return f"array {np.load(path, allow_pickle=False).shape}"


def _read_mean(path: Path) -> str:
    with np.load(path, allow_pickle=False) as d:
        missing = [k for k in ("pose", "shape", "cam") if k not in d.files]
        if missing:
            raise ValueError(f"no {', '.join(missing)} arrays")
        return f"pose {d['pose'].shape}, shape {d['shape'].shape}, cam {d['cam'].shape}"


def _read_downsampling(path: Path) -> str:
    d = load_npz_with_object_arrays(path, members=("D", "U", "F"))
    return f"members D, U, F read ({len(d['D'])} levels); others never unpickled"


def _read_uv(path: Path) -> str:
    from scipy.io import loadmat

    m = loadmat(str(path))
    missing = [k for k in ("All_Faces", "All_vertices", "All_FaceIndices", "All_U_norm", "All_V_norm") if k not in m]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    return f"{len(m['All_FaceIndices'].ravel())} DensePose faces"


def _read_gmm(path: Path) -> str:
    from core.fitting.priors import load_gmm_pkl

    g = load_gmm_pkl(path)
    return f"{g.means.shape[0]} Gaussians over {g.dim} pose values"


def _read_checkpoint(path: Path) -> str:
    from core.models.checkpoints import detect_architecture, extract_state_dict, read_checkpoint_file

    sd, entry = extract_state_dict(read_checkpoint_file(path), None, str(path))
    return f"{detect_architecture(sd)}, {len(sd)} tensors" + (f" (entry '{entry}')" if entry else "")


# (names searched, reader, what it enables, required)
_FILES: list[tuple[list[str], Callable[[Path], str], str, bool]] = [
    (MODEL_FILE_NAMES, _read_model,
     "the SMPL body: every method with --smpl-dir", True),
    (["J_regressor_extra.npy"], _read_npy, "SPIN's 9 extra joints (the 49 keypoints)", True),
    (["J_regressor_h36m.npy"], _read_npy, "H3.6M joints for evaluation (MPJPE / PA-MPJPE)", False),
    (["smpl_mean_params.npz"], _read_mean, "the regressors' mean start as trained (else the project's)", False),
    (["mesh_downsampling.npz"], _read_downsampling, "PyMAF's sampling vertices (pymaf on SMPL)", False),
    (UV_FILE_NAMES, _read_uv, "IUV and part maps on SMPL", False),
    (["gmm_08.pkl"], _read_gmm, "SMPLify's mocap GMM pose prior (else the open prior)", False),
    (["model_checkpoint.pt"], _read_checkpoint, "SPIN's HMR: --checkpoint hmr/spin/eft=…", False),
    (["pretrained_model/PyMAF_model_checkpoint.pt", "PyMAF_model_checkpoint.pt"], _read_checkpoint,
     "PyMAF: --checkpoint pymaf=…", False),
]


def check_folder(folder) -> list[FileStatus]:
    """Status of every file in :data:`_FILES` under ``folder`` (or its ``data/``)."""
    root = data_folder(Path(folder))
    out = []
    for names, reader, enables, required in _FILES:
        path = _find(root, names)
        if path is None:
            out.append(FileStatus(names[0], None, "missing", "", enables, required))
            continue
        try:
            detail = reader(path)
            out.append(FileStatus(names[0], path, "found", detail, enables, required))
        except Exception as e:  # noqa: BLE001 - any failure to read is reported, never raised
            first = (str(e) or type(e).__name__).splitlines()[0]
            out.append(FileStatus(names[0], path, "unreadable", first, enables, required))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.body.check", description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a SPIN/PyMAF data folder, a repository root, or a flat folder")
    args = ap.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: {args.folder} is not a folder", file=sys.stderr)
        return 2
    statuses = check_folder(args.folder)
    print(f"{args.folder}:")
    for s in statuses:
        where = f" ({s.path.relative_to(args.folder) if s.path and s.path.is_relative_to(args.folder) else s.path})" \
            if s.path else ""
        need = " [required]" if s.required and s.state != "found" else ""
        detail = f": {s.detail}" if s.detail else ""
        print(f"  {s.state:<10} {s.name}{where}{need}{detail}\n             → {s.enables}")
    try:
        body = load_smpl_dir(args.folder)
    except Exception as e:  # noqa: BLE001
        print(f"the SMPL body does not load: {(str(e) or type(e).__name__).splitlines()[0]}")
        return 1
    extras = [n for n, ok in (("PyMAF sampling", "down_ids_0" in body.aux), ("IUV maps", "face_uv" in body.aux)) if ok]
    print(f"the SMPL body loads ({body.num_vertices} vertices" + (f"; {', '.join(extras)}" if extras else "") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
