"""Per-visitor state of the web studio and the cache of rendered views.

A :class:`StudioSession` holds the visitor's photo, the detected people, the chosen
person's method inputs and the traces run on them. Each trace gets a :class:`TraceViews`:
its step images (overlay, side view, keypoints) rendered once into JPEG files in the
session's folder — the slider then only hands file paths to the browser — plus the exported
meshes/parameters, also written once. Rendering of the remaining steps continues on one
shared background worker after a run, so moving the slider rarely waits for a render.
"""
from __future__ import annotations

import atexit
import contextlib
import queue
import shutil
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from core.trace import Trace
from core.utils.io import atomic_write_bytes

from .export import image_plane, mesh_glb, mesh_obj, scene_glb, step_params_npz
from .maps import map_panels
from .shading import DEFAULT_MESH_COLOR
from .tempfiles import process_root
from .views import (
    ViewSettings,
    compare_strip,
    framing_radius,
    keypoints_image,
    overlay_image,
    side_view,
    step_strip,
    trace_intrinsics,
    trace_vertex_colors,
)

__all__ = ["StepImages", "TraceViews", "StudioSession", "background_executor", "write_jpeg"]

class _BackgroundWorker:
    """One daemon thread running queued jobs in order (shared by all sessions). A daemon, so
    that queued pre-rendering never delays the server's exit."""

    def __init__(self) -> None:
        self._queue: "queue.Queue[tuple[Callable[[], None], Future]]" = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="studio-render", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not _STOPPING.is_set():
            try:
                fn, fut = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as e:  # noqa: BLE001 - reported through the future
                fut.set_exception(e)

    def submit(self, fn: Callable, *args) -> Future:
        fut: Future = Future()
        self._queue.put((lambda: fn(*args), fut))
        return fut


_WORKER: Optional[_BackgroundWorker] = None
_WORKER_LOCK = threading.Lock()
_STOPPING = threading.Event()


def _stop_worker() -> None:
    """At exit: stop pre-rendering at the next step and give the current one a moment, so
    that no render is cut off while the interpreter shuts down."""
    _STOPPING.set()
    if _WORKER is not None:
        _WORKER._thread.join(timeout=3.0)


atexit.register(_stop_worker)


def background_executor() -> _BackgroundWorker:
    """The one background render worker shared by all sessions (keeps a 2-core server
    responsive: at most one render runs in the background)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = _BackgroundWorker()
        return _WORKER


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 90) -> Path:
    """Write an RGB uint8 image as JPEG (atomic: temp file + rename) and return the path."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {path.name}")
    atomic_write_bytes(path, buf.tobytes())
    return path


@dataclass(frozen=True)
class StepImages:
    """Files of one step's images: overlay on the crop, side view, keypoints."""

    overlay: Path
    side: Path
    keypoints: Path


class TraceViews:
    """Rendered views and exports of one trace, as files in ``folder`` (created).

    Args:
        trace: the trace.
        folder: where the files go (one folder per trace).
        settings: view sizes/colours.
    """

    def __init__(self, trace: Trace, folder: Path, settings: ViewSettings = ViewSettings()):
        if not trace.steps:
            raise ValueError(f"the trace of {trace.method!r} has no steps to show")
        self.trace = trace
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.colors = trace_vertex_colors(trace, settings.part_colors)
        self.mesh_colors = trace_vertex_colors(trace, True)  # exported meshes: body-part colours
        self.radius = framing_radius(trace)
        self._images: dict[int, StepImages] = {}
        self._files: dict[tuple, Path] = {}
        self._lock = threading.Lock()
        self._render_locks = [threading.Lock() for _ in trace.steps]
        self._cancel = threading.Event()
        self._future: Optional[Future] = None

    def __len__(self) -> int:
        return len(self.trace.steps)

    def _index(self, i: int) -> int:
        n = len(self.trace.steps)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"step {i} out of range 0..{n - 1}")
        return i

    def is_rendered(self, i: int) -> bool:
        """Whether step ``i``'s images are already on disk."""
        return self._index(i) in self._images

    @property
    def rendered_count(self) -> int:
        return len(self._images)

    def step_images(self, i: int) -> StepImages:
        """Step ``i``'s image files, rendering them now if needed (then cached)."""
        i = self._index(i)
        got = self._images.get(i)
        if got is not None:
            return got
        with self._render_locks[i]:
            got = self._images.get(i)
            if got is not None:
                return got
            tr, st = self.trace, self.settings
            ov = overlay_image(tr, i, st, vertex_colors=self.colors)
            sd = side_view(tr, i, settings=st, radius=self.radius, vertex_colors=self.colors)
            kp = keypoints_image(tr, i, st)
            stem = f"step{i:04d}"
            files = StepImages(write_jpeg(self.folder / f"{stem}_overlay.jpg", ov),
                               write_jpeg(self.folder / f"{stem}_side.jpg", sd),
                               write_jpeg(self.folder / f"{stem}_keypoints.jpg", kp))
            self._images[i] = files
            return files

    def prerender(self, order: Optional[list[int]] = None, limit: Optional[int] = None) -> None:
        """Render steps in ``order`` (default: last, first, then all in order) until done,
        cancelled (:meth:`cancel`) or ``limit`` steps are rendered."""
        n = len(self.trace.steps)
        order = order if order is not None else [n - 1, 0] + list(range(1, n - 1))
        for i in order:
            if self._cancel.is_set() or _STOPPING.is_set() or (limit is not None and self.rendered_count >= limit):
                return
            self.step_images(i)

    def start_background(self, limit: Optional[int] = None) -> Future:
        """Queue :meth:`prerender` on the shared background worker."""
        self._future = background_executor().submit(self.prerender, None, limit)
        return self._future

    def cancel(self) -> None:
        """Stop background rendering of this trace (at the next step boundary)."""
        self._cancel.set()

    def stop(self, timeout: float = 10.0) -> None:
        """:meth:`cancel`, and return once no background rendering of it runs: a queued job
        is dropped, a running one finishes the step it is writing."""
        self.cancel()
        fut = self._future
        if fut is not None and not fut.cancel():
            with contextlib.suppress(Exception):
                fut.result(timeout=timeout)

    # ------------------------------------------------------------------ cached files
    def _cached(self, key: tuple, make) -> Path:
        with self._lock:
            path = self._files.get(key)
            if path is not None and path.is_file():
                return path
        path = make()
        with self._lock:
            self._files[key] = path
        return path

    def _write(self, name: str, data: bytes | str) -> Path:
        path = self.folder / name
        atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
        return path

    def _stem(self, i: int) -> str:
        return f"{self.trace.method}_step{i:03d}"

    def glb(self, i: int, with_photo: bool = True) -> Path:
        """Step ``i``'s mesh as ``.glb`` (vertex colours; optionally the crop as a photo
        plane behind the person)."""
        i = self._index(i)

        def make() -> Path:
            step = self.trace.steps[i]
            if step.vertices is None or self.trace.faces is None:
                raise ValueError(f"step {i} ({step.label}) has no mesh to export")
            plane = None
            if with_photo and self.trace.crop is not None and np.isfinite(step.vertices).all():
                K, _ = trace_intrinsics(self.trace)
                z = step.vertices[:, 2]
                depth = float(z.max() + 0.05 * (z.max() - z.min() + 1e-3))
                if depth > 0:
                    plane = image_plane(self.trace.crop, K, depth)
            colors = self.mesh_colors if self.mesh_colors is not None else \
                np.tile(DEFAULT_MESH_COLOR, (len(step.vertices), 1))
            suffix = "_photo" if plane is not None else ""
            return self._write(f"{self._stem(i)}{suffix}.glb", mesh_glb(step.vertices, self.trace.faces, colors, plane))
        return self._cached(("glb", i, with_photo), make)

    def obj(self, i: int) -> Path:
        """Step ``i``'s mesh as ``.obj`` (vertex colours when known)."""
        i = self._index(i)

        def make() -> Path:
            step = self.trace.steps[i]
            if step.vertices is None or self.trace.faces is None:
                raise ValueError(f"step {i} ({step.label}) has no mesh to export")
            text = mesh_obj(step.vertices, self.trace.faces, self.mesh_colors,
                            comment=f"method: {self.trace.method}\nstep {i}: {step.label}")
            return self._write(f"{self._stem(i)}.obj", text)
        return self._cached(("obj", i), make)

    def params(self, i: int) -> Path:
        """Step ``i``'s parameters, vertices, joints and losses as ``.npz``."""
        i = self._index(i)
        return self._cached(("params", i),
                            lambda: self._write(f"{self._stem(i)}_params.npz", step_params_npz(self.trace, i)))

    def trace_file(self) -> Path:
        """The whole trace as ``.npz`` (reopens in the studio, the notebook and the desktop)."""
        return self._cached(("trace",), lambda: self._write(f"{self.trace.method}_trace.npz", self.trace.to_bytes()))

    def strip(self, max_items: int = 24) -> list[tuple[Path, str]]:
        """Overlay thumbnails of (up to ``max_items``) steps, as (file, caption)."""
        def make_all():
            items = step_strip(self.trace, max_items, ViewSettings(size=256, part_colors=self.settings.part_colors))
            return [(write_jpeg(self.folder / f"strip_{k:03d}.jpg", img), cap) for k, (img, cap) in enumerate(items)]
        with self._lock:
            cached = self._files.get(("strip", max_items))
        if cached is None:
            items = make_all()
            with self._lock:
                self._files[("strip", max_items)] = items  # type: ignore[assignment]
            return items
        return cached  # type: ignore[return-value]

    def maps(self, i: int) -> list[tuple[Path, str]]:
        """Pictures of step ``i``'s maps (IUV, visibility, features …), as (file, caption)."""
        i = self._index(i)
        key = ("maps", i)
        with self._lock:
            cached = self._files.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        panels = map_panels(self.trace, i, ViewSettings(size=320))
        items = [(write_jpeg(self.folder / f"maps{i:04d}_{k}.jpg", img), cap) for k, (img, cap) in enumerate(panels)]
        with self._lock:
            self._files[key] = items  # type: ignore[assignment]
        return items


# the Compare 3D view's colours, one per method in order (its table shows them as the legend)
COMPARE_PALETTE = [(0.36, 0.55, 0.93), (0.95, 0.55, 0.15), (0.25, 0.7, 0.35), (0.85, 0.25, 0.3),
                   (0.6, 0.45, 0.9), (0.1, 0.65, 0.65)]


class StudioSession:
    """One visitor's state (held in a ``gr.State``; :meth:`close` deletes its files).

    Attributes:
        image: the working photo (``studio.images.LoadedImage``) or None.
        detection: ``studio.pipeline.Detection`` or None.
        person: index of the chosen person.
        inputs: ``core.methods.MethodInputs`` of the chosen person, or None.
        crop: ``core.detect.PersonCrop`` of the chosen person, or None.
        traces: key → Trace (key = method name, or "upload: <file>").
        views: key → TraceViews.
        current: key of the trace shown.
        fit_options: the SMPLify controls' choices (``schedule``, ``camera_torso``), passed to
            the methods whose builders take them.
    """

    def __init__(self, root: Optional[Path] = None):
        self.id = uuid.uuid4().hex[:12]
        self.folder = Path(root or process_root()) / f"session-{self.id}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.image = None
        self.detection = None
        self.person = 0
        self.inputs = None
        self.crop = None
        self.traces: dict[str, Trace] = {}
        self.views: dict[str, TraceViews] = {}
        self.current: Optional[str] = None
        self.fit_options: dict = {}
        self._counter = 0

    def reset_results(self) -> None:
        """Forget traces (a new photo or person was chosen)."""
        for v in self.views.values():
            v.cancel()
        self.traces.clear()
        self.views.clear()
        self.current = None

    def add_trace(self, key: str, trace: Trace, settings: ViewSettings = ViewSettings(),
                  background: bool = True, limit: Optional[int] = None) -> TraceViews:
        """Store a trace, render its final step now and the rest in the background."""
        old = self.views.get(key)
        if old is not None:
            old.cancel()
        self._counter += 1
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)[:40]
        views = TraceViews(trace, self.folder / f"{self._counter:03d}_{safe}", settings)
        views.step_images(-1)
        self.traces[key] = trace
        self.views[key] = views
        self.current = key
        if background:
            views.start_background(limit)
        return views

    @property
    def current_views(self) -> Optional[TraceViews]:
        return self.views.get(self.current) if self.current else None

    def compare_images(self, keys: Optional[list[str]] = None) -> list[tuple[Path, str]]:
        """Final overlays + side views of the traces (all by default), over the chosen
        person's crop when there is one, as (file, caption)."""
        keys = keys or list(self.traces)
        traces = [self.traces[k] for k in keys if k in self.traces]
        ref = None
        if self.crop is not None:
            ref = (self.crop.image, self.crop.center, self.crop.scale)
        items = compare_strip(traces, reference=ref)
        self._counter += 1
        return [(write_jpeg(self.folder / f"compare{self._counter:03d}_{k}.jpg", img), cap)
                for k, (img, cap) in enumerate(items)]

    def compare_glb(self, keys: Optional[list[str]] = None, skip: Sequence[str] = ()) -> tuple[Optional[Path], dict]:
        """The final meshes of the traces side by side (left to right in ``keys`` order), one
        colour per method, as one ``.glb`` → (path or None when no trace has a finite mesh,
        {key: (r, g, b) in 0–1} of the meshes drawn — the legend). ``skip``: keys left out
        (e.g. failed runs, which would only dwarf the others)."""
        keys = keys or list(self.traces)
        meshes, names, colours, x = [], [], {}, 0.0
        for k in keys:
            tr = self.traces.get(k)
            if k in skip or tr is None or not tr.steps or tr.final.vertices is None or tr.faces is None:
                continue
            v = np.asarray(tr.final.vertices, np.float64)
            if not np.isfinite(v).all():
                continue
            lo, hi = v.min(0), v.max(0)
            width = float(hi[0] - lo[0])
            moved = v - (lo + hi) / 2.0 + np.array([x + width / 2.0, 0.0, 0.0])
            x += width + 0.3
            colours[k] = COMPARE_PALETTE[len(meshes) % len(COMPARE_PALETTE)]
            meshes.append((moved, tr.faces, np.tile(colours[k], (len(v), 1))))
            names.append(k.replace(":", "_").replace(" ", "_"))
        if not meshes:
            return None, {}
        center = np.array([(x - 0.3) / 2.0, 0.0, 0.0])
        self._counter += 1
        path = self.folder / f"compare{self._counter:03d}.glb"
        path.write_bytes(scene_glb(meshes, center=center, names=names))
        return path, colours

    def close(self) -> None:
        """Cancel background work and delete the session's files (after the step being
        rendered in the background, if any, has been written: it stops at that step)."""
        for v in self.views.values():
            v.cancel()                 # all at once, then wait for each
        for v in self.views.values():
            v.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
