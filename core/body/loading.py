"""Loading bodies: the embedded open body and a user's SMPL data folder.

A SMPL data folder is laid out like SPIN's / PyMAF's ``data/``::

    SMPL_NEUTRAL.pkl (or .npz)   SMPL_MALE.pkl   SMPL_FEMALE.pkl
    smpl/SMPL_NEUTRAL.pkl        (the same, one level down, as SPIN keeps it)
    J_regressor_extra.npy        (9, 6890)    SPIN's extra joints          [needed]
    J_regressor_h36m.npy         (17, 6890)   H36M regressor               [optional]
    smpl_mean_params.npz         pose (144,) shape (10,) cam (3,)         [optional]
    mesh_downsampling.npz        GraphCMR A/U/D/F                          [optional: PyMAF]
    UV_data/UV_Processed.mat     DensePose UV                              [optional: IUV]

Pickles (``.pkl``, and the object arrays inside ``mesh_downsampling.npz``) are read only
through the restricted unpickler of :mod:`core.utils.io`, which admits array data and
nothing else.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from core import ASSETS_DIR
from core.body.model import BodyModel

OPEN_BODY_DIR = ASSETS_DIR / "body" / "open"
SMPL_FILES_HELP = (
    "SMPL model files are obtained (free registration, non-commercial licence) from "
    "https://smpl.is.tue.mpg.de or https://smplify.is.tue.mpg.de (neutral model), and SPIN's "
    "data files (J_regressor_extra.npy, J_regressor_h36m.npy, smpl_mean_params.npz) from "
    "SPIN's fetch_data.sh. The open body needs none of them: load_body('open')."
)
SMPL_VERTEX_KEYPOINT_IDS = [332, 6260, 2800, 4071, 583, 3216, 3226, 3387, 6617, 6624, 6787]
_CACHE: dict = {}


class BodyFileError(FileNotFoundError):
    """A body file is missing or unreadable (the message says which and where to get it)."""


def load_body(name: str = "open", data_dir=None, gender: str = "neutral",
              device=None) -> BodyModel:
    """Load a body model by name: ``"open"`` (embedded) or ``"smpl"`` (needs ``data_dir``)."""
    if name == "open":
        key = ("open", str(data_dir or OPEN_BODY_DIR))
        if key not in _CACHE:
            _CACHE[key] = _load_open(Path(data_dir) if data_dir else OPEN_BODY_DIR)
        body = _CACHE[key]
    elif name == "smpl":
        if data_dir is None:
            raise BodyFileError("load_body('smpl') needs data_dir= a folder with SMPL files. "
                                + SMPL_FILES_HELP)
        key = ("smpl", str(Path(data_dir).resolve()), gender)
        if key not in _CACHE:
            _CACHE[key] = load_smpl_dir(Path(data_dir), gender)
        body = _CACHE[key]
    else:
        raise ValueError(f"unknown body {name!r}: use 'open' (embedded) or 'smpl' (with data_dir)")
    if device is not None:
        import copy

        body = copy.deepcopy(body).to(device)
    return body


def resolve_body(body="open", smpl_dir=None) -> BodyModel:
    """A method's body from what the user gave: a body model is used as it is; a name is
    loaded, and a SMPL folder (``smpl_dir``) means the SMPL body whatever the name (the
    methods' default name is "open")."""
    if not isinstance(body, str):
        return body
    return load_body("smpl" if smpl_dir is not None else body, data_dir=smpl_dir)


# ------------------------------------------------------------------------------ open body
def _load_open(folder: Path) -> BodyModel:
    model_path, aux_path = folder / "model.npz", folder / "aux.npz"
    for p in (model_path, aux_path):
        if not p.exists():
            raise BodyFileError(
                f"open body file missing: {p}. It is part of the repository (assets/); a "
                "fresh clone has it. Rebuild with: python -m core.body.build_open")
    with np.load(model_path, allow_pickle=False) as m:
        arrays = {k: m[k] for k in m.files}
    with np.load(aux_path, allow_pickle=False) as a:
        aux = {k: a[k] for k in a.files}
    return BodyModel("open", arrays["v_template"], arrays["shapedirs"], arrays["posedirs"],
                     arrays["J_regressor"], arrays["weights"], arrays["f"], aux)


# ------------------------------------------------------------------------------ SMPL
def _read_model_file(path: Path) -> dict:
    from core.utils.io import restricted_load_pickle, to_plain_arrays

    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    data = restricted_load_pickle(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of SMPL arrays, got {type(data).__name__}")
    return to_plain_arrays(data)


def _find(folder: Path, names: list[str]) -> Path | None:
    for n in names:
        for p in (folder / n, folder / "smpl" / n, folder / "body_models" / "smpl" / n):
            if p.exists():
                return p
    return None


def load_npz_with_object_arrays(path: Path, members=None) -> dict:
    """Read an .npz whose members may be pickled object arrays (e.g. GraphCMR's
    mesh_downsampling.npz), unpickling those through the restricted unpickler.

    Args:
        members: names to read (e.g. ("D", "U", "F")); None reads all. Members not asked for
            are never unpickled — GraphCMR's file has an ``M`` of pickled mesh objects
            (``__main__.MyMesh``) that nobody needs.
    Raises:
        KeyError: a requested member is missing (the message lists the file's members).
    """
    from core.utils.io import restricted_load_pickle, to_plain_arrays

    out = {}
    with zipfile.ZipFile(path) as z:
        names = {(m[:-4] if m.endswith(".npy") else m): m for m in z.namelist()}
        if members is not None:
            missing = [m for m in members if m not in names]
            if missing:
                raise KeyError(f"{path}: members {missing} are missing (it has {sorted(names)})")
        for key, member in names.items():
            if members is not None and key not in members:
                continue
            raw = z.read(member)
            f = io.BytesIO(raw)
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = np.lib.format._read_array_header(f, version)
            if dtype.hasobject:
                obj = restricted_load_pickle(f.read())
                out[key] = to_plain_arrays(obj, densify_sparse=False)
            else:
                f.seek(0)
                out[key] = np.lib.format.read_array(f, allow_pickle=False)
    return out


SMPL_MODEL_KEYS = ("v_template", "shapedirs", "J_regressor", "weights", "f")
UV_FILE_NAMES = ["UV_data/UV_Processed.mat", "UV_Processed.mat"]


def model_file_names(gender: str = "neutral") -> list[str]:
    """The names a SMPL model file of ``gender`` goes by (SPIN's, the npz form, SMPLify's)."""
    g = gender.upper()
    return [f"SMPL_{g}.pkl", f"SMPL_{g}.npz"] + (["basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"]
                                                 if g == "NEUTRAL" else [])


MODEL_FILE_NAMES = model_file_names("neutral")


def read_smpl_model(path: Path) -> dict:
    """A SMPL model file's arrays (restricted unpickler for ``.pkl``), checked to hold
    :data:`SMPL_MODEL_KEYS`; ValueError naming the first one missing."""
    arrays = _read_model_file(path)
    for k in SMPL_MODEL_KEYS:
        if k not in arrays:
            raise ValueError(f"{path}: not an SMPL model file (no '{k}' array)")
    return arrays


def data_folder(folder) -> Path:
    """The SPIN/PyMAF data folder meant by ``folder``: itself, or its ``data/`` when it is a
    repository root (no SMPL model file in it or its ``smpl/``, but one under ``data/``)."""
    folder = Path(folder)
    if _find(folder, MODEL_FILE_NAMES) is None and (folder / "data").is_dir() \
            and _find(folder / "data", MODEL_FILE_NAMES) is not None:
        return folder / "data"
    return folder


def load_smpl_dir(folder: Path, gender: str = "neutral") -> BodyModel:
    """Build a :class:`BodyModel` from a SPIN/PyMAF-style SMPL data folder (or a repository
    root holding one in ``data/``, see :func:`data_folder`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BodyFileError(f"SMPL data folder not found: {folder}. " + SMPL_FILES_HELP)
    folder = data_folder(folder)
    names = model_file_names(gender)
    model_path = _find(folder, names)
    if model_path is None:
        raise BodyFileError(f"no {' or '.join(names)} in {folder}. " + SMPL_FILES_HELP)
    arrays = read_smpl_model(model_path)
    nv = np.asarray(arrays["v_template"]).shape[0]
    aux: dict = {}
    extra_path = _find(folder, ["J_regressor_extra.npy"])
    if extra_path is None:
        raise BodyFileError(f"J_regressor_extra.npy not found in {folder} (SPIN's 9 extra "
                            "joints; SPIN's fetch_data.sh downloads it). " + SMPL_FILES_HELP)
    aux["J_regressor_extra"] = np.load(extra_path, allow_pickle=False).astype(np.float32)
    h36m = _find(folder, ["J_regressor_h36m.npy"])
    if h36m is not None:
        aux["J_regressor_h36m"] = np.load(h36m, allow_pickle=False).astype(np.float32)
    if "vertex_keypoint_ids" in arrays:          # written by core.body.export (open body)
        aux["vertex_keypoint_ids"] = np.asarray(arrays["vertex_keypoint_ids"], np.int64)
    elif nv == 6890:
        aux["vertex_keypoint_ids"] = np.array(SMPL_VERTEX_KEYPOINT_IDS, dtype=np.int64)
    else:
        raise ValueError(f"{model_path}: {nv} vertices but no 'vertex_keypoint_ids'; SMPL's "
                         "OpenPose vertex ids only apply to the 6,890-vertex SMPL mesh")
    mp = _find(folder, ["smpl_mean_params.npz"])
    if mp is not None:
        with np.load(mp, allow_pickle=False) as d:
            aux["mean_pose"] = d["pose"].astype(np.float32)
            aux["mean_shape"] = d["shape"].astype(np.float32)
            aux["mean_cam"] = d["cam"].astype(np.float32)
    else:
        from core.body.build_aux import mean_params

        aux["mean_pose"], aux["mean_shape"], aux["mean_cam"] = mean_params()
    ds = _find(folder, ["mesh_downsampling.npz"])
    if ds is not None:
        aux.update(_downsampling_aux(load_npz_with_object_arrays(ds, members=("D", "U", "F"))))
    uv = _find(folder, UV_FILE_NAMES)
    faces = np.asarray(arrays["f"]).astype(np.int64)
    if uv is not None:
        aux.update(_densepose_aux(uv, faces, nv))
    from core.body.build_aux import coco_regressor, part_colours

    aux["part_colors"] = part_colours()
    Jr = np.asarray(arrays["J_regressor"], dtype=np.float64)
    aux["J_regressor_coco"] = coco_regressor(nv, aux["vertex_keypoint_ids"], Jr,
                                             aux["J_regressor_extra"]).astype(np.float32)
    aux["flip_permutation"] = _mirror_permutation(np.asarray(arrays["v_template"]))
    return BodyModel("smpl", arrays["v_template"], arrays["shapedirs"], arrays.get("posedirs"),
                     Jr, arrays["weights"], faces, aux)


def _mirror_permutation(v: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    _, idx = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    return idx.astype(np.int64)


def _downsampling_aux(d: dict) -> dict:
    """GraphCMR mesh_downsampling (D: one-hot selections, U: upsampling, F: faces)."""
    import scipy.sparse as sp

    D, U, F = list(d["D"]), list(d["U"]), list(d["F"])
    out = {}
    for lvl in range(2):
        Dm = sp.csr_matrix(D[lvl])
        out[f"down_ids_{lvl}"] = np.asarray(Dm.argmax(axis=1)).ravel().astype(np.int64)
        Um = sp.coo_matrix(U[lvl])
        out[f"up_{lvl}_row"], out[f"up_{lvl}_col"] = Um.row.astype(np.int64), Um.col.astype(np.int64)
        out[f"up_{lvl}_val"] = Um.data.astype(np.float32)
        out[f"up_{lvl}_shape"] = np.array(Um.shape, np.int64)
        out[f"down_faces_{lvl + 1}"] = np.asarray(F[lvl + 1]).astype(np.int64)
    return out


def _densepose_aux(path: Path, faces: np.ndarray, nv: int) -> dict:
    """Parts and per-corner (U,V) of SMPL's faces from DensePose's UV_Processed.mat."""
    from scipy.io import loadmat

    m = loadmat(str(path))
    dp_faces = m["All_Faces"].astype(np.int64) - 1             # (13774,3) into DP vertices
    dp_vert = m["All_vertices"].ravel().astype(np.int64) - 1   # DP vertex → SMPL vertex
    fpart = m["All_FaceIndices"].ravel().astype(np.int64)
    U, V = m["All_U_norm"].ravel(), m["All_V_norm"].ravel()
    smpl_of_face = np.sort(dp_vert[dp_faces], axis=1)
    lookup = {tuple(r): i for i, r in enumerate(smpl_of_face)}
    face_part = np.zeros(len(faces), np.int64)
    face_uv = np.zeros((len(faces), 3, 2), np.float32)
    for fi, tri in enumerate(faces):
        j = lookup.get(tuple(sorted(tri)))
        if j is None:
            continue
        face_part[fi] = fpart[j]
        for c in range(3):
            k = [q for q in dp_faces[j] if dp_vert[q] == tri[c]][0]
            face_uv[fi, c] = (U[k], V[k])
    vertex_part = np.zeros(nv, np.int64)
    vertex_uv = np.zeros((nv, 2), np.float32)
    for fi in np.argsort(face_part):
        for c in range(3):
            vertex_part[faces[fi, c]] = face_part[fi]
            vertex_uv[faces[fi, c]] = face_uv[fi, c]
    return dict(face_part=face_part, face_uv=face_uv, vertex_part=vertex_part, vertex_uv=vertex_uv)


# ------------------------------------------------------------------------------ smplx
def smplx_from_arrays(arrays: dict, num_betas: int = 10):
    """An ``smplx.SMPL`` built from SMPL-layout arrays via its ``data_struct`` argument."""
    import smplx

    class _Struct:
        pass

    s = _Struct()
    for k, v in arrays.items():
        setattr(s, k, np.asarray(v))
    return smplx.SMPL(model_path="", data_struct=s, create_transl=False, num_betas=num_betas,
                      create_betas=True, create_global_orient=True, create_body_pose=True)
