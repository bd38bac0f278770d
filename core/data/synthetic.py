"""Synthetic open-body training data: random bodies rendered into 224² crops with full labels.

    python -m core.data.synthetic --out DIR --num N --shard-size K --seed S [--workers W]

Each sample (see :class:`SyntheticGenerator`):

* **pose** — a posture family (standing, walking, running, sitting, squatting, bending,
  reaching, kneeling/lunge, asymmetric arms, uniform in the range of motion) sampled joint
  by joint inside the anatomical range of motion of ``core.fitting.rom`` (AAOS normative
  ranges; see that module for the table and sources), half of them mirrored;
* **global orientation** — upright, facing a uniformly random direction (yaw ∈ ±180°), with
  camera pitch ~ N(0, 12°) and roll ~ N(0, 8°);
* **shape** — betas ~ N(0, 1) clipped to ±2.5 (the open body's shape space is whitened);
* **camera** — SPIN's crop camera (f = 5000 px, principal point at the crop centre):
  the weak-perspective scale makes the body's larger 2D extent fill U(0.65, 0.95) of the
  crop (10 % of samples: U(1.0, 1.4), truncated), centre jittered by ±10 % of the crop;
* **appearance** — :mod:`core.data.appearance` (clothing-like colours and UV patterns,
  Lambertian shading, random backgrounds, sensor noise).

Labels: 49 2D keypoints (crop pixels, conf 1) and 3D joints, pose (72 axis-angle), betas,
camera (s, tx, ty) and translation, IUV at 56² and at 224² (mask = part > 0), per-vertex
visibility (not occluded and facing the camera) and in-crop flags.

Shards: ``shard_%05d.npz`` (written atomically, see :func:`save_shard`: labels deflated,
images stored) of ``shard_size`` samples; shard i is generated from
``numpy.random.default_rng([seed, i])`` only, so the data set is deterministic for a seed
(on one machine) and an interrupted run resumes by skipping the shards that exist.
``meta.json`` is written last. UV is stored quantised to uint8 (step 1/255); per-vertex
flags are bit-packed.

Speed: samples are made ``CHUNK`` at a time — one body forward, one vectorised pass for
labels and appearance, one Open3D scene per body (see
:func:`core.data.render_labels.raycast_label_batch`). On one core a sample costs ≈8.5 ms
CPU including its share of the shard file, ≈5.5 ms of it the label raycast (≈4.4 ms of
that inside Embree); ``--workers 2`` runs one process per core
(``benchmarks/bench_data.py`` measures all of it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from core.fitting.rom import POSTURE_FAMILIES, euler_pose_to_axis_angle, mirror_axis_angle_pose, \
    rotmat_to_axis_angle_np, sample_euler_poses
from core.geometry import normalize_image
from core.render.camera import pixel_ray_directions, spin_intrinsics
from core.utils.io import atomic_open, atomic_write_bytes

from .appearance import composite, random_appearances, random_backgrounds, shade_pixels
from .augment import apply_pixel_noise
from .render_labels import raycast_label_batch

__all__ = ["FORMAT", "CHUNK", "SyntheticConfig", "SyntheticGenerator", "generate_shard", "save_shard",
           "write_dataset", "SyntheticShards", "main"]

FORMAT = "hmr-studio-synthetic/1"
FAMILIES = tuple(POSTURE_FAMILIES)
CHUNK = 32
"""Samples rendered per batch inside :meth:`SyntheticGenerator.generate` (part of the
definition of the data: changing it changes the samples drawn for a seed)."""


@dataclass(frozen=True)
class SyntheticConfig:
    """Generator settings (stored in ``meta.json``)."""

    img_res: int = 224
    iuv_res: int = 56
    focal: float = 5000.0
    betas_clip: float = 2.5
    fill: tuple = (0.65, 0.95)
    truncation_prob: float = 0.1
    truncation_fill: tuple = (1.0, 1.4)
    center_jitter: float = 0.1
    yaw_range: float = 180.0
    pitch_std: float = 12.0
    roll_std: float = 8.0


def _axis_rotation(a: np.ndarray, i: int, j: int) -> np.ndarray:
    """(n,) radians → (n, 3, 3) rotations in the (i, j) coordinate plane."""
    a = np.asarray(a, np.float64)
    R = np.tile(np.eye(3), a.shape + (1, 1))
    c, s = np.cos(a), np.sin(a)
    R[..., i, i], R[..., i, j], R[..., j, i], R[..., j, j] = c, -s, s, c
    return R


def _rx(a):
    return _axis_rotation(a, 1, 2)


def _ry(a):
    return _axis_rotation(a, 2, 0)


def _rz(a):
    return _axis_rotation(a, 0, 1)


class SyntheticGenerator:
    """Renders labelled samples of a body (see module docstring).

    Args:
        body: a ``core.body`` BodyModel with DensePose labels (``face_part``, ``face_uv``).
        cfg: :class:`SyntheticConfig`.
        nthreads: Open3D ray-casting threads (0 = all, 1 in parallel workers).
    """

    def __init__(self, body, cfg: SyntheticConfig = SyntheticConfig(), nthreads: int = 0):
        self.body = body
        self.cfg = cfg
        self.nthreads = nthreads
        self.faces = np.asarray(body.faces)
        self.face_part = np.asarray(body.face_part, np.int64)
        self.face_uv = np.asarray(body.face_uv, np.float32)
        self.K = spin_intrinsics(cfg.focal, cfg.img_res)
        # (3, R·R) view-ray directions of the pixels; (3, F) face corners
        self._rays = np.ascontiguousarray(pixel_ray_directions(self.K, cfg.img_res).reshape(-1, 3).T, np.float32)
        self._corners = np.ascontiguousarray(self.faces.T)

    # ------------------------------------------------------------------ parameters
    def sample_params(self, rng: np.random.Generator, n: int) -> dict:
        """Pose (n, 72), betas (n, 10), family (n,) for n bodies."""
        cfg = self.cfg
        fam = rng.integers(len(FAMILIES), size=n)
        euler = np.zeros((n, 23, 3))
        for k, name in enumerate(FAMILIES):
            sel = np.flatnonzero(fam == k)
            if len(sel):
                euler[sel] = sample_euler_poses(name, len(sel), rng)
        body_pose = euler_pose_to_axis_angle(euler)
        mirror = rng.uniform(size=n) < 0.5
        body_pose[mirror] = mirror_axis_angle_pose(body_pose[mirror])
        angles = np.deg2rad(rng.normal(size=(n, 2)) * [cfg.pitch_std, cfg.roll_std])
        yaw = np.deg2rad(rng.uniform(-cfg.yaw_range, cfg.yaw_range, size=n))
        R = _rx(angles[:, 0]) @ _rz(angles[:, 1]) @ np.diag([1.0, -1.0, -1.0]) @ _ry(yaw)
        go = rotmat_to_axis_angle_np(R)
        betas = np.clip(rng.normal(size=(n, 10)), -cfg.betas_clip, cfg.betas_clip)
        return {"pose": np.concatenate([go, body_pose], 1).astype(np.float32),
                "betas": betas.astype(np.float32), "family": fam.astype(np.int16)}

    def place_camera(self, vertices: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Weak-perspective cameras framing each body.

        Args: vertices (n, V, 3) body frame (posed, no translation).
        Returns: cam (n, 3) = (s, tx, ty) and transl (n, 3) = (tx, ty, 2f/(res·s)).
        """
        cfg = self.cfg
        n = len(vertices)
        xy = np.ascontiguousarray(np.moveaxis(np.asarray(vertices)[..., :2], -1, 0))     # (2, n, V)
        lo, hi = xy.min(-1).T.astype(np.float64), xy.max(-1).T.astype(np.float64)
        side = (hi - lo).max(1)
        trunc = rng.uniform(size=n) < cfg.truncation_prob
        fill = np.where(trunc, rng.uniform(*cfg.truncation_fill, size=n), rng.uniform(*cfg.fill, size=n))
        s = 2.0 * fill / side
        offset = rng.uniform(-cfg.center_jitter, cfg.center_jitter, size=(n, 2)) * 2.0
        txy = offset / s[:, None] - (lo + hi) / 2.0
        cam = np.concatenate([s[:, None], txy], 1)
        tz = 2.0 * cfg.focal / (cfg.img_res * s)
        return cam.astype(np.float32), np.concatenate([txy, tz[:, None]], 1).astype(np.float32)

    # ------------------------------------------------------------------ rendering
    def _shading_normals(self, hits, vertex_normals: np.ndarray) -> np.ndarray:
        """(N, 3) unit smooth normals at the hit pixels of raster 0 (barycentric blend of
        the vertex normals), turned towards the camera.

        Args: hits: :class:`~core.data.render_labels.SparseHits` of the image raster;
            vertex_normals: (B, V, 3).
        """
        B, V, _ = vertex_normals.shape
        # per coordinate (structure of arrays): 1-D gathers and arithmetic are the fast kind
        vn = np.ascontiguousarray(vertex_normals.reshape(-1, 3).T)                         # (3, B·V)
        offset = hits.batch * V
        corner = [np.take(self._corners[c], hits.face_id) + offset for c in range(3)]
        bary = [np.ascontiguousarray(hits.bary[:, c]) for c in range(3)]
        n = [bary[0] * np.take(vn[k], corner[0]) + bary[1] * np.take(vn[k], corner[1])
             + bary[2] * np.take(vn[k], corner[2]) for k in range(3)]
        # face the camera: the view ray through a pixel is K⁻¹ (x + ½, y + ½, 1)
        ray = [np.take(self._rays[k], hits.pixel) for k in range(3)]
        toward = np.where(n[0] * ray[0] + n[1] * ray[1] + n[2] * ray[2] > 0, np.float32(-1.0), np.float32(1.0))
        scale = toward / np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).clip(1e-8)
        return np.stack([n[0] * scale, n[1] * scale, n[2] * scale], axis=-1)

    def render(self, vertices: np.ndarray, rng: np.random.Generator) -> dict:
        """Images and label maps of posed bodies.

        Args: vertices (B, V, 3) camera frame.
        Returns: image (B, R, R, 3) uint8, part (B, R, R) uint8, uv (B, 2, R, R) uint8
            (UV quantised, step 1/255), part_iuv (B, r, r) uint8, uv_iuv (B, 2, r, r) uint8,
            visible (B, V) bool, in_crop (B, V) bool.
        """
        cfg = self.cfg
        R, r = cfg.img_res, cfg.iuv_res
        B = len(vertices)
        hits = raycast_label_batch(vertices, self.faces, self.K, R, [(R, R), (r, r)], face_groups=self.face_part,
                                   nthreads=self.nthreads)
        maps = {}
        for name, h in zip(("", "_iuv"), hits.rasters):
            H, W = h.size
            part = np.zeros((B, H, W), np.uint8)
            hit_part = np.take(self.face_part, h.face_id)
            part.reshape(-1)[h.flat_index] = hit_part
            uvf = np.einsum("nk,nkc->nc", h.bary, np.take(self.face_uv, h.face_id, axis=0))   # (N, 2) float32
            uv = np.zeros((B, 2, H, W), np.uint8)
            base = h.batch * (2 * H * W) + h.pixel
            uv.reshape(-1)[base] = _quantise(uvf[:, 0])
            uv.reshape(-1)[base + H * W] = _quantise(uvf[:, 1])
            maps["part" + name], maps["uv" + name] = part, uv
            if not name:
                body_part, body_uv = hit_part, uvf
        # in crop: projects inside [0, R)² in front of the camera (core.render.visibility's test)
        v64 = vertices.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = v64[..., 2]
            px = self.K[0, 0] * (v64[..., 0] / z) + self.K[0, 2]
            py = self.K[1, 1] * (v64[..., 1] / z) + self.K[1, 2]
            in_crop = (px >= 0) & (px < R) & (py >= 0) & (py < R) & (z > 0)
        h = hits.rasters[0]
        app = random_appearances(rng, B)
        body_rgb = shade_pixels(app, h.batch, body_part, body_uv[:, 0], body_uv[:, 1],
                                self._shading_normals(h, hits.vertex_normals), rng)
        image = composite(random_backgrounds(rng, B, R), h.flat_index, body_rgb, rng)
        return {"image": image, "part": maps["part"], "uv": maps["uv"], "part_iuv": maps["part_iuv"],
                "uv_iuv": maps["uv_iuv"], "visible": hits.visible, "in_crop": in_crop}

    def generate(self, rng: np.random.Generator, n: int) -> dict:
        """n labelled samples as stacked arrays (the shard layout, see :func:`generate_shard`).

        Samples are made in batches of ``CHUNK`` (each: parameters, one body forward, the
        label raycast, appearance), all drawn from ``rng`` in a fixed order.
        """
        chunks = [self._generate_chunk(rng, min(CHUNK, n - s)) for s in range(0, n, CHUNK)]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

    def _generate_chunk(self, rng: np.random.Generator, n: int) -> dict:
        params = self.sample_params(rng, n)
        pose = torch.as_tensor(params["pose"])
        with torch.no_grad():
            out = self.body(betas=torch.as_tensor(params["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3])
        verts = out.vertices.numpy()
        joints = out.joints.numpy().astype(np.float64)
        cam, transl = self.place_camera(verts, rng)
        f, c = self.cfg.focal, self.cfg.img_res / 2.0
        jc = joints + transl[:, None].astype(np.float64)
        kp = np.concatenate([f * jc[..., :2] / jc[..., 2:3] + c, np.ones(jc.shape[:2] + (1,))], -1)
        maps = self.render(verts.astype(np.float32) + transl[:, None], rng)
        return {
            "image": maps["image"], "part": maps["part"], "uv": maps["uv"],
            "part_iuv": maps["part_iuv"], "uv_iuv": maps["uv_iuv"],
            "visible_bits": np.packbits(maps["visible"], axis=1),
            "in_crop_bits": np.packbits(maps["in_crop"], axis=1),
            "keypoints": kp.astype(np.float32),
            "joints3d": joints.astype(np.float32),
            "pose": params["pose"], "betas": params["betas"], "family": params["family"],
            "cam": cam, "transl": transl,
        }


def _quantise(a: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → uint8 (step 1/255, rounded; clipped first)."""
    return np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- shards
def shard_name(i: int) -> str:
    return f"shard_{i:05d}.npz"


def generate_shard(generator: SyntheticGenerator, seed: int, shard_index: int, count: int) -> dict:
    """Shard ``shard_index`` (``count`` samples) from ``default_rng([seed, shard_index])``."""
    arrays = generator.generate(np.random.default_rng([seed, shard_index]), count)
    arrays["sample_id"] = np.arange(count, dtype=np.int64) + shard_index * 10**7
    return arrays


_WORKER: dict = {}


def _worker_init(body_name: str, cfg: dict) -> None:
    torch.set_num_threads(1)
    from core.body import load_body

    _WORKER["gen"] = SyntheticGenerator(load_body(body_name), SyntheticConfig(**cfg), nthreads=1)


STORED_KEYS = frozenset({"image"})
"""Shard members written without compression: noisy 8-bit images deflate by only ≈20 %
at ≈4 ms CPU per sample — more than a third of the cost of generating one."""


def save_shard(path, arrays: dict, deflate_level: int = 1) -> None:
    """Write ``arrays`` as an ``.npz`` (readable by ``np.load``) atomically: the labels
    deflated at ``deflate_level`` (they are mostly background zeros: ≈10× smaller), the
    members in :data:`STORED_KEYS` stored."""
    import io
    import zipfile

    with atomic_open(path) as f, zipfile.ZipFile(f, "w", allowZip64=True) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(value), allow_pickle=False)
            stored = name in STORED_KEYS
            zf.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getbuffer(),
                        compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED,
                        compresslevel=None if stored else deflate_level)


def _write_shard(generator: SyntheticGenerator, job) -> int:
    out, seed, i, count = job
    save_shard(Path(out) / shard_name(i), generate_shard(generator, seed, i, count))
    return i


def _worker_shard(job) -> int:
    return _write_shard(_WORKER["gen"], job)


def write_dataset(out, num: int, shard_size: int = 256, seed: int = 0, body_name: str = "open",
                  cfg: SyntheticConfig = SyntheticConfig(), workers: int = 1, progress: bool = True) -> dict:
    """Generate ``num`` samples into ``out`` (shards + ``meta.json``); existing shards are kept.

    Returns the metadata written to ``meta.json``.
    """
    if num <= 0 or shard_size <= 0:
        raise ValueError(f"num and shard_size must be > 0, got num={num}, shard_size={shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if (old.get("seed"), old.get("shard_size"), old.get("config")) != (seed, shard_size, _cfg_dict(cfg)):
            raise FileExistsError(f"{out} holds a synthetic set made with other settings (seed/shard size/config); "
                                  f"choose another --out or delete it")
    counts = [min(shard_size, num - s) for s in range(0, num, shard_size)]
    jobs = [(str(out), seed, i, c) for i, c in enumerate(counts) if not (out / shard_name(i)).is_file()]
    t0 = time.perf_counter()
    done = 0
    if workers <= 1:
        from core.body import load_body

        generator = SyntheticGenerator(load_body(body_name), cfg)
        for job in jobs:
            _write_shard(generator, job)
            done += 1
            if progress:
                print(f"shard {done}/{len(jobs)} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, _worker_init, (body_name, _cfg_dict(cfg))) as pool:
            for _ in pool.imap_unordered(_worker_shard, jobs):
                done += 1
                if progress:
                    print(f"shard {done}/{len(jobs)} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    from core.body import load_body

    meta = {"format": FORMAT, "body": body_name, "num_vertices": int(load_body(body_name).num_vertices),
            "seed": seed, "num_samples": num, "shard_size": shard_size, "config": _cfg_dict(cfg),
            "shards": [{"file": shard_name(i), "count": c} for i, c in enumerate(counts)]}
    atomic_write_bytes(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
    return meta


def _cfg_dict(cfg: SyntheticConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


# ----------------------------------------------------------------------------- reading
class SyntheticShards(Dataset):
    """A generated set as a map-style Dataset (one decoded shard cached per process).

    Args:
        root: the folder with ``meta.json`` and the shards.
        img_res: network input side (resized from the stored 224 with area filtering).
        pixel_noise: SPIN's per-channel multiplier range (0.4 → U[0.6, 1.4]); 0 disables.
            The synthetic set already varies geometry and appearance, so no flip/rotation
            is applied (a flip would need the UV chart symmetry map to mirror the IUV labels).
        name: dataset name (fits dictionary key); default the folder name.
        cache_shards: decoded shards kept per process.

    Samples carry the keys of :class:`~core.data.spin_npz.SpinNpzDataset` (the "original
    image" is the crop: center (112, 112), scale 224/200) plus: ``cam`` (3,), ``transl``
    (3,), ``joints3d`` (49, 3) body frame, ``iuv_part`` (r, r) int64, ``iuv_uv`` (2, r, r),
    ``part_full`` (224, 224) int64, ``uv_full`` (2, 224, 224), ``mask`` (224, 224) float32,
    ``vertex_visible`` (V,) float32 (not occluded, facing the camera), ``vertex_weight`` (V,)
    float32 (visible and inside the crop — MeshPose's visibility target).
    """

    def __init__(self, root, img_res: int = 224, pixel_noise: float = 0.0, name: str | None = None,
                 cache_shards: int = 2):
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a synthetic set (no meta.json); create one with "
                                    f"python -m core.data.synthetic --out {self.root} --num N")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: unknown format {self.meta.get('format')!r}")
        self.name = name or self.root.name
        self.img_res = int(img_res)
        self.pixel_noise = float(pixel_noise)
        self.counts = np.array([s["count"] for s in self.meta["shards"]])
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)])
        self.num_vertices = int(self.meta["num_vertices"])
        self.stored_res = int(self.meta["config"]["img_res"])
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = max(1, cache_shards)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _shard(self, i: int) -> dict:
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        path = self.root / self.meta["shards"][i]["file"]
        if not path.is_file():
            raise FileNotFoundError(f"missing shard {path}; rerun python -m core.data.synthetic with the same "
                                    f"--out/--seed to regenerate it")
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        self._cache[i] = data
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return data

    def locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range [0, {len(self)})")
        s = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return s, int(index - self.offsets[s])

    def epoch_permutation(self, rng: np.random.Generator) -> np.ndarray:
        """Shards in random order, samples shuffled inside each shard (keeps the shard
        cache effective while still shuffling)."""
        return np.concatenate([self.offsets[s] + rng.permutation(self.counts[s])
                               for s in rng.permutation(len(self.counts))])

    def __getitem__(self, index: int) -> dict:
        return self.get(index, np.random.default_rng())

    def get(self, index: int, rng: np.random.Generator) -> dict:
        s, k = self.locate(int(index))
        d = self._shard(s)
        img = d["image"][k]
        if self.img_res != img.shape[0]:
            img = cv2.resize(img, (self.img_res, self.img_res), interpolation=cv2.INTER_AREA)
        if self.pixel_noise > 0:
            img = apply_pixel_noise(img, rng.uniform(1 - self.pixel_noise, 1 + self.pixel_noise, size=3))
        half = self.stored_res / 2.0
        kp = d["keypoints"][k].copy()
        kp[:, :2] = (kp[:, :2] - half) / half
        j3d = d["joints3d"][k]
        V = self.num_vertices
        visible = np.unpackbits(d["visible_bits"][k])[:V].astype(np.float32)
        in_crop = np.unpackbits(d["in_crop_bits"][k])[:V].astype(np.float32)
        part_full = d["part"][k].astype(np.int64)
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))  # noqa: E731
        return {
            "img": normalize_image(np.asarray(img, np.float32)),
            "keypoints": f32(kp),
            "pose_3d": f32(np.concatenate([j3d[25:], np.ones((24, 1))], 1)),
            "pose": f32(d["pose"][k]), "betas": f32(d["betas"][k]),
            "has_smpl": torch.tensor(1.0), "has_pose_3d": torch.tensor(1.0),
            "center": f32([half, half]), "scale": torch.tensor(self.stored_res / 200.0),
            "rot": torch.tensor(0.0), "is_flipped": torch.tensor(0.0),
            "dataset": self.name, "sample_index": torch.tensor(int(index), dtype=torch.int64),
            "imgname": f"{self.meta['shards'][s]['file']}#{k}", "gender": torch.tensor(-1),
            "cam": f32(d["cam"][k]), "transl": f32(d["transl"][k]), "joints3d": f32(j3d),
            "iuv_part": torch.as_tensor(d["part_iuv"][k].astype(np.int64)),
            "iuv_uv": f32(d["uv_iuv"][k] / 255.0),
            "part_full": torch.as_tensor(part_full), "uv_full": f32(d["uv"][k] / 255.0),
            "mask": f32(part_full > 0),
            "vertex_visible": f32(visible), "vertex_weight": f32(visible * in_crop),
        }


# ----------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core.data.synthetic", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--num", type=int, required=True, help="number of samples")
    ap.add_argument("--shard-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--body", default="open")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (one Open3D thread each)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    meta = write_dataset(args.out, args.num, args.shard_size, args.seed, args.body, workers=args.workers)
    dt = time.perf_counter() - t0
    print(f"{meta['num_samples']} samples in {len(meta['shards'])} shards → {args.out} ({dt:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
