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

Shards: ``shard_%05d.npz`` (compressed, written atomically) of ``shard_size`` samples; shard
i is generated from ``numpy.random.default_rng([seed, i])`` only, so the data set is
deterministic for a seed (on one machine) and an interrupted run resumes by skipping the
shards that exist. ``meta.json`` is written last. UV is stored quantised to uint8
(step 1/255); per-vertex flags are bit-packed.
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
from core.render.camera import spin_intrinsics
from core.render.iuv import iuv_from_raycast
from core.render.raycast import vertex_normals
from core.render.visibility import visibility_from_raycast
from core.utils.io import atomic_savez, atomic_write_bytes

from .appearance import composite, random_appearance, random_background, shade_body
from .augment import apply_pixel_noise
from .render_labels import raycast_rasters

__all__ = ["FORMAT", "SyntheticConfig", "SyntheticGenerator", "generate_shard", "write_dataset",
           "SyntheticShards", "main"]

FORMAT = "hmr-studio-synthetic/1"
FAMILIES = tuple(POSTURE_FAMILIES)


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


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


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
        self.face_part = np.asarray(body.face_part)
        self.face_uv = np.asarray(body.face_uv)
        self.K = spin_intrinsics(cfg.focal, cfg.img_res)

    # ------------------------------------------------------------------ parameters
    def sample_params(self, rng: np.random.Generator, n: int) -> dict:
        """Pose (n, 72), betas (n, 10), family (n,) for n bodies."""
        cfg = self.cfg
        fam = rng.integers(len(FAMILIES), size=n)
        body_pose = np.zeros((n, 69))
        for k, name in enumerate(FAMILIES):
            sel = np.flatnonzero(fam == k)
            if len(sel):
                body_pose[sel] = euler_pose_to_axis_angle(sample_euler_poses(name, len(sel), rng))
        mirror = rng.uniform(size=n) < 0.5
        body_pose[mirror] = mirror_axis_angle_pose(body_pose[mirror])
        R = np.stack([_rx(np.deg2rad(rng.normal() * cfg.pitch_std)) @ _rz(np.deg2rad(rng.normal() * cfg.roll_std))
                      @ np.diag([1.0, -1.0, -1.0]) @ _ry(np.deg2rad(rng.uniform(-cfg.yaw_range, cfg.yaw_range)))
                      for _ in range(n)])
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
        lo, hi = vertices[..., :2].min(1), vertices[..., :2].max(1)
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
    def _smooth_normals(self, verts: np.ndarray, hits) -> np.ndarray:
        vn = vertex_normals(verts[None], self.faces)[0]
        fid = hits.face_id[0]
        fg = fid >= 0
        n = np.zeros(fid.shape + (3,), np.float32)
        corners = self.faces[fid[fg]]                                   # (P, 3)
        n[fg] = np.einsum("pk,pkc->pc", hits.bary[0][fg], vn[corners])
        n[fg] /= np.linalg.norm(n[fg], axis=-1, keepdims=True).clip(1e-8)
        # face the camera: the view ray through pixel (x, y) is K⁻¹ (x + ½, y + ½, 1)
        ys, xs = np.nonzero(fg)
        rays = np.stack([(xs + 0.5 - self.K[0, 2]) / self.K[0, 0], (ys + 0.5 - self.K[1, 2]) / self.K[1, 1],
                         np.ones(len(xs))], -1)
        flip = (n[fg] * rays).sum(-1) > 0
        nf = n[fg]
        nf[flip] = -nf[flip]
        n[fg] = nf
        return n

    def render(self, vertices: np.ndarray, rng: np.random.Generator) -> dict:
        """Image and label maps of one posed body.

        Args: vertices (V, 3) camera frame.
        Returns: image (R, R, 3) uint8, part (R, R) uint8, uv (2, R, R) float32, part_iuv
            (r, r), uv_iuv (2, r, r), visible (V,) bool, in_crop (V,) bool.
        """
        cfg = self.cfg
        R, r = cfg.img_res, cfg.iuv_res
        hits, hits_small = raycast_rasters(vertices, self.faces, self.K, R, [(R, R), (r, r)],
                                           vertex_occlusion=True, nthreads=self.nthreads)
        iuv = iuv_from_raycast(hits, self.face_part, self.face_uv)
        iuv_small = iuv_from_raycast(hits_small, self.face_part, self.face_uv)
        vis = visibility_from_raycast(vertices[None], self.faces, self.K, R, hits)
        app = random_appearance(rng)
        body_rgb = shade_body(iuv.part[0], iuv.u[0], iuv.v[0], self._smooth_normals(vertices, hits), app, rng)
        image = composite(random_background(rng, R), body_rgb, iuv.part[0] > 0, rng)
        return {"image": image, "part": iuv.part[0], "uv": np.stack([iuv.u[0], iuv.v[0]]),
                "part_iuv": iuv_small.part[0], "uv_iuv": np.stack([iuv_small.u[0], iuv_small.v[0]]),
                "visible": vis.visible[0], "in_crop": ~vis.out_of_crop[0]}

    def generate(self, rng: np.random.Generator, n: int) -> dict:
        """n labelled samples as stacked arrays (the shard layout, see :func:`generate_shard`)."""
        params = self.sample_params(rng, n)
        pose = torch.as_tensor(params["pose"])
        with torch.no_grad():
            out = self.body(betas=torch.as_tensor(params["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3])
        verts = out.vertices.numpy().astype(np.float64)
        joints = out.joints.numpy().astype(np.float64)
        cam, transl = self.place_camera(verts, rng)
        f, c = self.cfg.focal, self.cfg.img_res / 2.0
        jc = joints + transl[:, None].astype(np.float64)
        kp = np.concatenate([f * jc[..., :2] / jc[..., 2:3] + c, np.ones(jc.shape[:2] + (1,))], -1)
        maps = [self.render((verts[i] + transl[i]).astype(np.float32), rng) for i in range(n)]
        q = lambda a: np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
        return {
            "image": np.stack([m["image"] for m in maps]),
            "part": np.stack([m["part"] for m in maps]).astype(np.uint8),
            "uv": q(np.stack([m["uv"] for m in maps])),
            "part_iuv": np.stack([m["part_iuv"] for m in maps]).astype(np.uint8),
            "uv_iuv": q(np.stack([m["uv_iuv"] for m in maps])),
            "visible_bits": np.packbits(np.stack([m["visible"] for m in maps]), axis=1),
            "in_crop_bits": np.packbits(np.stack([m["in_crop"] for m in maps]), axis=1),
            "keypoints": kp.astype(np.float32),
            "joints3d": joints.astype(np.float32),
            "pose": params["pose"], "betas": params["betas"], "family": params["family"],
            "cam": cam, "transl": transl,
        }


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


def _write_shard(generator: SyntheticGenerator, job) -> int:
    out, seed, i, count = job
    atomic_savez(Path(out) / shard_name(i), compress=True, **generate_shard(generator, seed, i, count))
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
