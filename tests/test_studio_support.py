"""Helpers shared by the studio tests (imported as ``tests.test_studio_support``), and tests
of those helpers.

* :func:`body_trace`: a small real trace on the open body (rest pose turned to face the
  camera, moved step by step towards the keypoints' depth), with target keypoints and the
  maps the studio draws (IUV, per-vertex visibility, a feature map, sampling points).
* :class:`TranslationFit` / :func:`register_test_method`: a test-only registry method
  ("studio_test_fit") that fits the camera translation of the mean body to the 2D keypoints
  (a few Gauss–Newton steps). It runs in well under a second, so the app's handlers can be
  tested end to end without waiting for SMPLify. It is registered by the tests only.
"""
from __future__ import annotations

import io
import functools

import numpy as np
import torch
from PIL import Image

from core.methods import MethodInputs, register_method, unregister_method, available_methods
from core.trace import Step, Trace

TEST_METHOD = "studio_test_fit"
FOCAL = 5000.0


@functools.lru_cache(maxsize=1)
def open_body():
    from core.body import load_body

    return load_body("open")


@functools.lru_cache(maxsize=1)
def rest_mesh() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open body at rest in the camera frame orientation (upright: y down, facing −z):
    (vertices (V, 3), 49 joints (49, 3), faces (F, 3))."""
    body = open_body()
    turn = torch.tensor([np.pi, 0.0, 0.0], dtype=torch.float32)[None]  # 180° about x: y up → y down
    out = body(betas=torch.zeros(1, 10), body_pose=torch.zeros(1, 69), global_orient=turn)
    return out.vertices[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64), body.faces


def project(points: np.ndarray, transl: np.ndarray) -> np.ndarray:
    p = points + transl
    return FOCAL * p[:, :2] / p[:, 2:3] + 112.0


def body_trace(n_steps: int = 4, with_maps: bool = True, method: str = "test_body") -> Trace:
    """A trace whose meshes are the open body at depths approaching the target's."""
    v, j, faces = rest_mesh()
    target_t = np.array([0.0, 0.1, 55.0])
    kp = np.concatenate([project(j, target_t), np.ones((49, 1))], axis=1)
    kp[3, 2] = 0.0  # one missing keypoint
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, size=(224, 224, 3), dtype=np.uint8)
    steps = []
    for i in range(n_steps):
        a = i / max(n_steps - 1, 1)
        t = (1 - a) * np.array([0.3, -0.2, 70.0]) + a * target_t
        j2d = project(j, t)
        err = float(np.linalg.norm(j2d - kp[:, :2], axis=1)[kp[:, 2] > 0].mean())
        maps = {}
        if with_maps and i == n_steps - 1:
            iuv = np.zeros((56, 56, 3), np.float32)
            iuv[10:40, 20:36, 0] = 5
            iuv[10:40, 20:36, 1] = np.linspace(0, 1, 16)[None]
            iuv[10:40, 20:36, 2] = np.linspace(0, 1, 30)[:, None]
            maps = {"iuv": iuv, "visibility": (v[:, 2] < np.median(v[:, 2])).astype(np.float32),
                    "feature_sum": rng.normal(size=(14, 14)).astype(np.float32),
                    "sampling_points": rng.uniform(0, 224, size=(20, 2)).astype(np.float32),
                    "sampled_vertex_ids": np.arange(20)}
        steps.append(Step(f"test step {i}", params={"transl": t, "betas": np.zeros(10)}, vertices=v + t,
                          joints2d=j2d, losses={"keypoints_2d_px": err, "depth": float(t[2])}, maps=maps,
                          meta={"iteration": i}))
    return Trace(method, crop=crop, camera={"focal": FOCAL, "center": np.array([112.0, 112.0]), "img_res": 224,
                                            "bbox_center": np.array([256.0, 256.0]), "bbox_scale": 2.0,
                                            "img_size": np.array([512.0, 512.0])},
                 steps=steps, body="open", target_keypoints=kp, faces=faces, meta={"weights_trained": True})


class TranslationFit:
    """Test method: the mean open body, translation fitted to the crop keypoints by
    Gauss–Newton on the reprojection error (rotation and pose fixed)."""

    def __init__(self, num_iters: int = 4, record_every: int = 1):
        self.num_iters = int(num_iters)
        self.record_every = int(record_every) if record_every else None  # None: only the result

    def run(self, inputs: MethodInputs, progress=None) -> Trace:
        v, j, faces = rest_mesh()
        kp = inputs.keypoints
        ok = kp[:, 2] > 0
        if ok.sum() < 2:
            raise ValueError("studio_test_fit needs at least two keypoints")
        t = np.array([0.0, 0.0, 60.0])
        steps = []
        for it in range(self.num_iters + 1):
            j2d = project(j, t)
            res = (j2d - kp[:, :2])[ok]
            err = float(np.linalg.norm(res, axis=1).mean())
            if (self.record_every and it % self.record_every == 0) or it == self.num_iters:
                steps.append(Step(f"translation fit {it}/{self.num_iters}", params={"transl": t.copy()},
                                  vertices=v + t, joints2d=j2d, losses={"keypoints_2d_px": err}))
            if progress is not None:
                progress(it / max(self.num_iters, 1), f"iteration {it}")
            # Gauss–Newton on t (numerical Jacobian, 3 columns)
            J = np.zeros((2 * ok.sum(), 3))
            for c in range(3):
                d = np.zeros(3)
                d[c] = 1e-3 * (1.0 if c < 2 else 10.0)
                J[:, c] = ((project(j, t + d) - kp[:, :2])[ok] - res).reshape(-1) / d[c]
            step, *_ = np.linalg.lstsq(J, -res.reshape(-1), rcond=None)
            for _ in range(20):  # backtracking: only accept steps that lower the error
                cand = t + step
                cand[2] = max(cand[2], 1.0)
                if np.linalg.norm((project(j, cand) - kp[:, :2])[ok], axis=1).mean() < err:
                    t = cand
                    break
                step = step / 2
        return Trace(TEST_METHOD, crop=inputs.crop,
                     camera={"focal": FOCAL, "center": np.array([112.0, 112.0]), "img_res": 224,
                             "bbox_center": inputs.center, "bbox_scale": inputs.scale,
                             "img_size": np.asarray(inputs.image.shape[:2], np.float64)},
                     steps=steps, body="open", target_keypoints=kp, faces=faces, meta={})


def register_test_method() -> None:
    """Register "studio_test_fit" (idempotent)."""
    if TEST_METHOD not in available_methods():
        register_method(TEST_METHOD, builder=TranslationFit, family="optimisation", needs=("keypoints",),
                        description="test-only translation fit")


def unregister_test_method() -> None:
    if TEST_METHOD in available_methods():
        unregister_method(TEST_METHOD)


def astronaut_bytes(fmt: str = "JPEG", **kw) -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, fmt, **kw)
    return buf.getvalue()


# ----------------------------------------------------------------------------- helper tests
def test_body_trace_projects_into_the_crop():
    tr = body_trace()
    final = tr.final
    assert final.losses["keypoints_2d_px"] < 1e-6  # the last step sits exactly on the targets
    assert tr.steps[0].losses["keypoints_2d_px"] > 5
    uv = project(final.vertices - final.params["transl"], final.params["transl"])
    assert ((uv > 0) & (uv < 224)).all(axis=1).mean() > 0.5


def test_translation_fit_reduces_the_keypoint_error():
    _, j, _ = rest_mesh()
    t_true = np.array([0.2, 0.1, 48.0])
    kp = np.concatenate([project(j, t_true), np.ones((49, 1))], axis=1)
    img = np.zeros((224, 224, 3), np.uint8)
    inputs = MethodInputs(image=img, crop=img, center=np.array([112.0, 112.0]), scale=1.12, keypoints=kp)
    tr = TranslationFit(num_iters=4).run(inputs)
    errs = [s.losses["keypoints_2d_px"] for s in tr.steps]
    assert errs[0] > 10 and errs[-1] < 0.5, errs
    np.testing.assert_allclose(tr.final.params["transl"], t_true, atol=0.05)


# ----------------------------------------------------------------------------- live server
SERVER_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1])
import os
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
from tests.test_studio_support import register_test_method
register_test_method()
from studio.app import launch_app
from studio.config import StudioConfig
methods = sys.argv[3].split(",")
launch_app(StudioConfig(host="127.0.0.1", port=int(sys.argv[2]), methods=methods, default_iterations=int(sys.argv[4]),
                        preview_iterations=int(sys.argv[5]), examples_dir=sys.argv[6]), quiet=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """The studio launched in a subprocess on a free 127.0.0.1 port (context manager)."""

    def __init__(self, tmp_path, methods=(TEST_METHOD,), iterations: int = 6, preview: int = 0,
                 timeout: float = 120.0, env: dict | None = None):
        import subprocess
        import sys
        from pathlib import Path

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = Path(tmp_path) / "server.log"
        root = str(Path(__file__).resolve().parents[1])
        env = {**__import__("os").environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1", **(env or {})}
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, root, str(self.port), ",".join(methods), str(iterations),
             str(preview), str(Path(tmp_path) / "examples")],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=env, cwd=root)
        self.timeout = timeout

    def __enter__(self) -> "LiveServer":
        import time
        import urllib.request

        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"studio server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"studio server did not start in {self.timeout} s:\n{self.log.read_text()[-3000:]}")

    def alive(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(self.url, timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def __exit__(self, *exc) -> None:
        import subprocess

        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._log_file.close()
