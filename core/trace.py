"""The Trace: what a method did, step by step — the one contract between ``core`` and the
front ends.

A :class:`Trace` holds the input crop and its camera, the target keypoints, and an ordered
list of :class:`Step` s (body parameters, camera-frame vertices, projected 2D joints,
scalar losses, optional named maps). It is plain data: :meth:`Trace.save` writes **one
``.npz``** atomically, readable with ``np.load(path, allow_pickle=False)``:

- arrays under flat keys: ``crop``, ``faces``, ``target_keypoints``, ``camera/<name>``,
  ``step003/params/<name>``, ``step003/vertices``, ``step003/joints2d``,
  ``step003/maps/<name>``;
- a JSON header under ``__trace__`` (a 0-d NumPy unicode array): format name and version,
  method, body, trace meta, and per step its label, losses, meta and which arrays exist.

Floating-point arrays are stored (and held) as float32; integer, bool and uint8 arrays keep
their dtype. Torch tensors are accepted anywhere an array is and converted to NumPy.

Example::

    trace = Trace("spin", crop=crop, camera={"focal": 5000.0, "center": [112, 112]},
                  body="open", faces=body.faces)
    trace.steps.append(Step("IEF 1", params={"betas": betas}, vertices=v, joints2d=j2d,
                            losses={"keypoints_2d": 12.3}))
    trace.save("run.npz"); Trace.load("run.npz").final.label
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Iterator, Union

import numpy as np

from core.utils.io import atomic_savez
from core.utils.npz import LimitedNpz, NpzLimitError, NpzLimits

__all__ = ["Step", "Trace", "TraceFormatError", "TRACE_FORMAT", "TRACE_VERSION"]

TRACE_FORMAT = "hmr-studio-trace"
TRACE_VERSION = 1
HEADER_KEY = "__trace__"

PathLike = Union[str, os.PathLike]

# Limits on what a trace file may declare, checked before anything is allocated (an upload
# is read with these; real traces are a few MB: 200 SMPLify steps of the 6,890-vertex body
# with maps are < 40 MB).
TRACE_LIMITS = NpzLimits(max_members=50_000, max_member_bytes=64 << 20, max_total_bytes=256 << 20)
MAX_HEADER_BYTES = 16 << 20
MAX_STEPS = 5_000
MAX_CROP_SIDE = 2_048
MAX_VERTICES = 200_000
MAX_FACES = 400_000
MAX_JOINTS = 1_000


class TraceFormatError(ValueError):
    """The file is not a (readable) HMR Studio trace."""


def _to_array(x: Any, name: str) -> np.ndarray:
    """Array-like/tensor → NumPy; floats → float32; object arrays refused (no pickle)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind == "O":
        raise TypeError(f"{name}: cannot store an object array in a trace (it would need pickle); "
                        f"give a numeric, bool or string array")
    if a.dtype.kind == "c":
        raise TypeError(f"{name}: complex arrays are not supported in a trace")
    if a.dtype.kind == "f" and a.dtype != np.float32:
        a = a.astype(np.float32)
    return a


def _check_shape(a: np.ndarray | None, name: str, ndim: int, last: int | None,
                 hint: str) -> np.ndarray | None:
    if a is None:
        return None
    a = _to_array(a, name)
    if a.ndim != ndim or (last is not None and a.shape[-1] != last):
        raise ValueError(f"{name}: expected {hint}, got shape {a.shape}")
    return a


def _check_names(d: dict, what: str) -> dict:
    if not isinstance(d, dict):
        raise TypeError(f"{what} must be a dict name → value, got {type(d).__name__}")
    for k in d:
        if not isinstance(k, str) or not k:
            raise ValueError(f"{what}: names must be non-empty strings, got {k!r}")
    return d


def _scalar(v: Any, name: str) -> Any:
    if hasattr(v, "detach") and hasattr(v, "item"):
        v = v.detach().cpu().item()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"{name}: expected str, int, float or bool, got {type(v).__name__}")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "detach") and hasattr(o, "tolist"):
        return o.detach().cpu().tolist()
    raise TypeError(f"object of type {type(o).__name__} is not JSON serialisable")


def _dumps_meta(meta: dict, what: str) -> Any:
    """Normalise a meta dict to plain JSON types, naming the offending key on failure."""
    try:
        return json.loads(json.dumps(meta, default=_json_default, allow_nan=True))
    except (TypeError, ValueError) as e:
        for k, v in meta.items():
            try:
                json.dumps(v, default=_json_default)
            except (TypeError, ValueError):
                raise TypeError(f"{what}[{k!r}] is not JSON-serialisable ({e}); store strings, "
                                f"numbers, lists or dicts in meta, arrays in maps/params") from None
        raise TypeError(f"{what} is not JSON-serialisable: {e}") from None


@dataclass(eq=False)
class Step:
    """One step of a method run.

    Attributes:
        label: what happened, e.g. ``"PyMAF level 2"``, ``"SMPLify body 40/100"``.
        params: body parameters, name → array, e.g. ``"global_orient"`` (1,3,3),
            ``"body_pose"`` (23,3,3), ``"betas"`` (10,), ``"cam"`` (3,) weak-perspective,
            ``"transl"`` (3,).
        vertices: (V, 3) vertices in the camera frame (x right, y down, z forward) or None.
        joints2d: (J, 2) projected joints in crop pixels or None.
        losses: name → float (losses and metrics after this step).
        maps: name → array, optional extras (IUV (H,W,3), sampling points (N,2), per-vertex
            visibility (V,), feature summaries …).
        meta: name → str/int/float/bool (e.g. learning rate, iteration, timing).
    """

    label: str
    params: dict[str, np.ndarray] = field(default_factory=dict)
    vertices: np.ndarray | None = None
    joints2d: np.ndarray | None = None
    losses: dict[str, float] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.label, str):
            raise TypeError(f"Step.label must be a str, got {type(self.label).__name__}")
        self.params = {k: _to_array(v, f"Step {self.label!r} params[{k!r}]")
                       for k, v in _check_names(self.params, "Step.params").items()}
        self.maps = {k: _to_array(v, f"Step {self.label!r} maps[{k!r}]")
                     for k, v in _check_names(self.maps, "Step.maps").items()}
        self.vertices = _check_shape(self.vertices, f"Step {self.label!r} vertices", 2, 3, "(V, 3)")
        self.joints2d = _check_shape(self.joints2d, f"Step {self.label!r} joints2d", 2, 2,
                                     "(J, 2) crop pixels (drop any confidence column)")
        self.losses = {k: float(_scalar(v, f"Step {self.label!r} losses[{k!r}]"))
                       for k, v in _check_names(self.losses, "Step.losses").items()}
        self.meta = {k: _scalar(v, f"Step {self.label!r} meta[{k!r}]")
                     for k, v in _check_names(self.meta, "Step.meta").items()}


@dataclass(eq=False)
class Trace:
    """A method run: input crop, camera and the ordered steps.

    Attributes:
        method: registry name of the method (``"spin"``, ``"pymaf"`` …).
        crop: (H, W, 3) uint8 RGB input crop (224×224 for SPIN/PyMAF) or None.
        camera: name → array describing the crop camera, e.g. ``"focal"`` () px,
            ``"center"`` (2,) principal point in crop px, ``"img_res"`` (), and the crop's box
            in the original image ``"bbox_center"`` (2,), ``"bbox_scale"`` (), ``"img_size"``
            (2,) = (H, W).
        steps: the steps, in order.
        body: body model the vertices use (``"open"`` or ``"smpl"``).
        target_keypoints: (J, 3) target 2D keypoints (x, y, conf) in crop pixels, or None.
        faces: (F, 3) integer triangle indices of the mesh, or None.
        meta: JSON-serialisable dict (weights trained/untrained, checkpoint name, timings …).

    The positional order ``Trace(method, crop, camera, steps)`` follows docs/CONTRACTS.md.
    """

    method: str
    crop: np.ndarray | None = None
    camera: dict[str, np.ndarray] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    body: str = "open"
    target_keypoints: np.ndarray | None = None
    faces: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not self.method:
            raise TypeError(f"Trace.method must be a non-empty str, got {self.method!r}")
        if not isinstance(self.body, str):
            raise TypeError(f"Trace.body must be a str such as 'open' or 'smpl', got {type(self.body).__name__}")
        if self.crop is not None:
            crop = self.crop.detach().cpu().numpy() if hasattr(self.crop, "detach") else np.asarray(self.crop)
            if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
                raise ValueError(f"Trace.crop: expected an (H, W, 3) uint8 RGB image, got shape {crop.shape} "
                                 f"dtype {crop.dtype}; use core.geometry.denormalize_image for network inputs")
            self.crop = crop
        self.camera = {k: _to_array(v, f"Trace.camera[{k!r}]")
                       for k, v in _check_names(self.camera, "Trace.camera").items()}
        self.target_keypoints = _check_shape(self.target_keypoints, "Trace.target_keypoints", 2, 3,
                                             "(J, 3) = (x, y, confidence) in crop pixels")
        if self.faces is not None:
            faces = _check_shape(self.faces, "Trace.faces", 2, 3, "(F, 3) triangle indices")
            if faces.dtype.kind not in "iu":
                raise TypeError(f"Trace.faces must be integer, got {faces.dtype}")
            self.faces = faces
        self.steps = list(self.steps)
        for i, s in enumerate(self.steps):
            if not isinstance(s, Step):
                raise TypeError(f"Trace.steps[{i}] is a {type(s).__name__}, expected core.trace.Step")
        if not isinstance(self.meta, dict):
            raise TypeError(f"Trace.meta must be a dict, got {type(self.meta).__name__}")

    # ------------------------------------------------------------------ helpers
    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    @property
    def final(self) -> Step:
        """The last step (the method's result)."""
        if not self.steps:
            raise ValueError(f"trace of {self.method!r} has no steps")
        return self.steps[-1]

    @property
    def step_labels(self) -> list[str]:
        """Labels of all steps, in order."""
        return [s.label for s in self.steps]

    def loss_curves(self) -> dict[str, np.ndarray]:
        """Loss name → (len(trace),) float64 array over steps, NaN where a step lacks it.

        Names are ordered by first appearance.
        """
        names: dict[str, None] = {}
        for s in self.steps:
            names.update(dict.fromkeys(s.losses))
        return {n: np.array([s.losses.get(n, np.nan) for s in self.steps], dtype=np.float64)
                for n in names}

    # ------------------------------------------------------------------ serialisation
    def _arrays_and_header(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        if self.crop is not None:
            arrays["crop"] = np.asarray(self.crop, dtype=np.uint8)
        if self.faces is not None:
            arrays["faces"] = _to_array(self.faces, "faces")
        if self.target_keypoints is not None:
            arrays["target_keypoints"] = _to_array(self.target_keypoints, "target_keypoints")
        for k, v in self.camera.items():
            arrays[f"camera/{k}"] = _to_array(v, f"camera[{k!r}]")
        width = max(3, len(str(max(len(self.steps) - 1, 0))))
        steps_header = []
        for i, s in enumerate(self.steps):
            if not isinstance(s, Step):
                raise TypeError(f"Trace.steps[{i}] is a {type(s).__name__}, expected core.trace.Step")
            key = f"step{i:0{width}d}"
            for k, v in s.params.items():
                arrays[f"{key}/params/{k}"] = _to_array(v, f"{key} params[{k!r}]")
            for k, v in s.maps.items():
                arrays[f"{key}/maps/{k}"] = _to_array(v, f"{key} maps[{k!r}]")
            if s.vertices is not None:
                arrays[f"{key}/vertices"] = _to_array(s.vertices, f"{key} vertices")
            if s.joints2d is not None:
                arrays[f"{key}/joints2d"] = _to_array(s.joints2d, f"{key} joints2d")
            steps_header.append({
                "key": key, "label": s.label, "params": list(s.params), "maps": list(s.maps),
                "vertices": s.vertices is not None, "joints2d": s.joints2d is not None,
                "losses": {k: float(v) for k, v in s.losses.items()},
                "meta": _dumps_meta(s.meta, f"steps[{i}].meta"),
            })
        header = {
            "format": TRACE_FORMAT, "version": TRACE_VERSION,
            "method": self.method, "body": self.body,
            "meta": _dumps_meta(self.meta, "Trace.meta"),
            "camera": list(self.camera),
            "crop": self.crop is not None, "faces": self.faces is not None,
            "target_keypoints": self.target_keypoints is not None,
            "steps": steps_header,
        }
        arrays[HEADER_KEY] = np.array(json.dumps(header, allow_nan=True))
        return arrays

    def save(self, path: PathLike, compress: bool = True) -> None:
        """Write the trace to one ``.npz`` file, atomically (the old file survives a failure).

        Args:
            path: destination (written as given; no suffix is added).
            compress: zip-deflate the arrays (smaller files, slower save).
        """
        atomic_savez(path, compress=compress, **self._arrays_and_header())

    def to_bytes(self, compress: bool = True) -> bytes:
        """The ``.npz`` file content as bytes (for web download)."""
        buf = io.BytesIO()
        (np.savez_compressed if compress else np.savez)(buf, **self._arrays_and_header())
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> "Trace":
        """Read a trace from ``.npz`` bytes (e.g. a web upload); see :meth:`load`."""
        return cls._read(io.BytesIO(bytes(data)), "<bytes>")

    @classmethod
    def load(cls, path: PathLike) -> "Trace":
        """Read a trace saved by :meth:`save` (``allow_pickle=False``).

        Raises:
            TraceFormatError: not an ``.npz``, not a trace, a corrupt trace, or a trace
                written by a newer HMR Studio (higher format version).
        """
        with open(path, "rb") as f:
            return cls._read(f, os.fspath(path))

    @classmethod
    def _read(cls, f, source: str) -> "Trace":
        try:
            npz = LimitedNpz(f, source, TRACE_LIMITS)
        except NpzLimitError as e:
            raise TraceFormatError(f"{e}. Traces written by HMR Studio are far smaller; this file is refused.") from None
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise TraceFormatError(f"{source}: not an HMR Studio trace (.npz expected): {e}") from None
        with npz:
            if HEADER_KEY not in npz:
                raise TraceFormatError(f"{source}: not an HMR Studio trace: no '{HEADER_KEY}' header "
                                       f"(keys: {sorted(npz.files)[:8]}…)")
            try:
                raw = npz.array(HEADER_KEY, max_shape=(), max_bytes=MAX_HEADER_BYTES)
                header = json.loads(str(raw[()]))
            except NpzLimitError as e:
                raise TraceFormatError(f"{e}") from None
            except (ValueError, TypeError) as e:
                raise TraceFormatError(f"{source}: unreadable trace header: {e}") from None
            if not isinstance(header, dict) or header.get("format") != TRACE_FORMAT:
                raise TraceFormatError(f"{source}: header format is {header.get('format') if isinstance(header, dict) else header!r}, "
                                       f"expected {TRACE_FORMAT!r}")
            version = header.get("version")
            if not isinstance(version, int) or version < 1:
                raise TraceFormatError(f"{source}: invalid trace format version {version!r}")
            if version > TRACE_VERSION:
                raise TraceFormatError(f"{source}: trace format version {version} was written by a newer "
                                       f"HMR Studio; this one reads versions <= {TRACE_VERSION}. Upgrade to open it.")
            steps_header = header.get("steps")
            if isinstance(steps_header, list) and len(steps_header) > MAX_STEPS:
                raise TraceFormatError(f"{source}: the trace lists {len(steps_header)} steps; at most {MAX_STEPS} "
                                       f"are accepted")

            def get(key: str, max_shape=None) -> np.ndarray:
                if key not in npz:
                    raise TraceFormatError(f"{source}: corrupt trace: array '{key}' listed in the header is missing")
                try:
                    return npz.array(key, max_shape=max_shape)
                except NpzLimitError as e:
                    raise TraceFormatError(str(e)) from None

            try:
                seen: set[str] = set()
                steps = []
                for sh in steps_header:
                    key = sh["key"]
                    if not isinstance(key, str) or key in seen:
                        raise TraceFormatError(f"{source}: corrupt trace: step key {key!r} is repeated or invalid")
                    seen.add(key)
                    steps.append(Step(
                        label=sh["label"],
                        params={k: get(f"{key}/params/{k}") for k in sh["params"]},
                        vertices=get(f"{key}/vertices", (MAX_VERTICES, 3)) if sh["vertices"] else None,
                        joints2d=get(f"{key}/joints2d", (MAX_JOINTS, 2)) if sh["joints2d"] else None,
                        losses=sh["losses"],
                        maps={k: get(f"{key}/maps/{k}") for k in sh["maps"]},
                        meta=sh["meta"],
                    ))
                trace = cls(
                    method=header["method"],
                    crop=get("crop", (MAX_CROP_SIDE, MAX_CROP_SIDE, 3)) if header["crop"] else None,
                    camera={k: get(f"camera/{k}") for k in header["camera"]},
                    steps=steps,
                    body=header["body"],
                    target_keypoints=get("target_keypoints", (MAX_JOINTS, 3)) if header["target_keypoints"] else None,
                    faces=get("faces", (MAX_FACES, 3)) if header["faces"] else None,
                    meta=header["meta"],
                )
            except TraceFormatError:
                raise
            except (KeyError, TypeError, ValueError) as e:
                raise TraceFormatError(f"{source}: corrupt trace (missing or bad field: {e})") from None
        trace._check_mesh_indices(source)
        return trace

    def _check_mesh_indices(self, source: str) -> None:
        """Faces must index every step's vertices (a mismatch would fail deep in a renderer)."""
        if self.faces is None or not self.faces.size:
            return
        lo, hi = int(self.faces.min()), int(self.faces.max())
        for s in self.steps:
            if s.vertices is not None and (lo < 0 or hi >= len(s.vertices)):
                raise TraceFormatError(f"{source}: corrupt trace: its faces use vertex indices {lo}..{hi} but step "
                                       f"{s.label!r} has {len(s.vertices)} vertices")
