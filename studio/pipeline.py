"""Image → people → crop → a method from ``core.methods`` → Trace, as the studio runs it.

The studio never reaches into a model: it lists the registry (:func:`method_choices`),
builds methods with the operator's resources (:class:`MethodRunner`: the SMPL folder and
checkpoints are passed to builders that accept them) and runs them on
:class:`~core.methods.MethodInputs` cut from the chosen person.
"""
from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from core.methods import MethodInputs, available_methods, create_method, default_weights, method_info, missing_needs
from core.models.official import checkpoint_hint
from core.quality import assess_trace
from core.trace import Trace

from .config import StudioConfig

__all__ = [
    "Detection", "detect", "person_inputs", "draw_people", "person_label",
    "MethodChoice", "method_choices", "builder_parameters", "MethodRunner",
]

ProgressFn = Callable[[float, str], None]


# ----------------------------------------------------------------------------- detection
@dataclass
class Detection:
    """People found in an image.

    Attributes:
        people: list of ``core.detect.DetectedPerson``, largest first.
        source: "mediapipe", "openpose" or "" (nothing ran).
        message: a sentence for the UI (who was found, or why nobody).
    """

    people: list
    source: str
    message: str


def detect(image: np.ndarray, openpose_json=None, max_people: int = 6) -> Detection:
    """Find people: from an OpenPose JSON when given (path or parsed dict), else MediaPipe.

    Never raises for missing people or a missing detector: the :class:`Detection` says why.
    A malformed OpenPose JSON raises ``ValueError`` with a message for the visitor.
    """
    from core.detect import MediapipeUnavailable, OpenPoseJSONError, detect_people, people_from_openpose

    if openpose_json is not None:
        try:
            people = people_from_openpose(openpose_json, image.shape)
        except (OpenPoseJSONError, ValueError, OSError) as e:
            raise ValueError(f"The OpenPose JSON cannot be used: {e}") from None
        source = "openpose"
    else:
        try:
            people = detect_people(image, max_people=max_people)
        except MediapipeUnavailable:
            return Detection([], "", "Automatic detection needs MediaPipe, which is not installed on this server "
                                     "(pip install 'hmr-studio[detect]'). Upload an OpenPose JSON with the photo "
                                     "instead.")
        source = "mediapipe"
    if not people:
        where = "in the OpenPose JSON" if source == "openpose" else "by MediaPipe"
        return Detection([], source, f"No person was found {where}. Try a photo where one person is clearly "
                                     f"visible (whole body or upper body), or upload an OpenPose JSON.")
    n = len(people)
    msg = f"Found {n} {'person' if n == 1 else 'people'} ({source})."
    if n > 1:
        msg += " Pick one below (largest first)."
    return Detection(people, source, msg)


def person_label(i: int, person) -> str:
    """'Person 1 (score 0.93, 320×610 px)'."""
    x0, y0, x1, y1 = person.box
    return f"Person {i + 1} (score {person.score:.2f}, {x1 - x0:.0f}×{y1 - y0:.0f} px)"


def person_inputs(image: np.ndarray, person) -> tuple[MethodInputs, object]:
    """SPIN crop of one person and the method inputs cut from it.

    Returns:
        (MethodInputs with keypoints in crop and full-image pixels, core.detect.PersonCrop).
    """
    from core.detect import crop_person

    crop = crop_person(image, person)
    inputs = MethodInputs(image=image, crop=crop.image, center=crop.center, scale=crop.scale,
                          keypoints=crop.keypoints, keypoints_full=crop.keypoints_image)
    return inputs, crop


_BOX_COLORS = [(66, 99, 235), (240, 140, 0), (47, 158, 68), (224, 49, 49), (132, 94, 247), (12, 166, 120)]


def draw_people(image: np.ndarray, people: Sequence, selected: Optional[int] = None,
                max_side: int = 900) -> np.ndarray:
    """The photo (downscaled to ``max_side``) with numbered person boxes and keypoints; the
    selected person drawn thicker, the others dimmer."""
    from core.body.joint_names import BODY25_EDGES

    s = min(1.0, max_side / max(image.shape[:2]))
    img = image if s == 1.0 else cv2.resize(image, (round(image.shape[1] * s), round(image.shape[0] * s)),
                                            interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(img.copy())
    t = max(1, round(max(img.shape[:2]) / 400))
    for i, p in enumerate(people):
        color = _BOX_COLORS[i % len(_BOX_COLORS)]
        sel = selected is None or i == selected
        thick = 2 * t if (selected is not None and i == selected) else t
        if not sel:
            color = tuple(int(0.5 * c + 0.5 * 200) for c in color)
        x0, y0, x1, y1 = (np.asarray(p.box) * s).round().astype(int)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thick, cv2.LINE_AA)
        kp = np.asarray(p.body25, np.float64)
        ok = kp[:, 2] > 0.2
        for a, b in BODY25_EDGES:
            if ok[a] and ok[b]:
                cv2.line(img, tuple((kp[a, :2] * s).round().astype(int)), tuple((kp[b, :2] * s).round().astype(int)),
                         color, t, cv2.LINE_AA)
        label = str(i + 1)
        fs = 0.5 * t + 0.3
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, fs, t)
        cv2.rectangle(img, (x0, max(0, y0 - th - 8)), (x0 + tw + 8, max(th + 8, y0)), color, -1)
        cv2.putText(img, label, (x0 + 4, max(th + 4, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255), t,
                    cv2.LINE_AA)
    return img


# ----------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class MethodChoice:
    """A registry method as the UI offers it.

    Attributes:
        name: registry name.
        family: method family.
        description: one line.
        runnable: whether it can run with this server's resources.
        reason: why not ('' when runnable).
        untrained: it is (or, for test-time optimisation, starts from) a learned model with
            neither user weights nor shipped ones: results show the architecture, not a
            trained prediction.
        iterative: its builder takes ``num_iters`` (an optimisation: preview + iteration control).
        weights: where its weights come from, in words ('' for methods without weights).
    """

    name: str
    family: str
    description: str
    runnable: bool
    reason: str = ""
    untrained: bool = False
    iterative: bool = False
    weights: str = ""

    @property
    def label(self) -> str:
        """Dropdown label with badges."""
        badges = []
        starts = "starts from " if (self.family == "optimisation" or self.name == "spin") and self.weights else ""
        if self.untrained:
            badges.append(f"⚠ {starts}untrained weights")
        elif self.weights.startswith("trained on synthetic"):
            badges.append(f"{starts}weights trained on synthetic data")
        elif self.weights.startswith("your checkpoint"):
            badges.append(f"{starts}your checkpoint")
        if not self.runnable:
            badges.append("unavailable")
        return f"{self.name} ({self.family})" + (f" — {', '.join(badges)}" if badges else "")


def builder_parameters(name: str) -> dict[str, inspect.Parameter]:
    """Keyword parameters of a registered method's builder ({} if not inspectable)."""
    info = method_info(name)
    if info.builder is None:
        return {}
    try:
        return dict(inspect.signature(info.builder).parameters)
    except (TypeError, ValueError):
        return {}


def _accepts(params: dict, key: str) -> bool:
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def method_choices(config: StudioConfig, include_unavailable: bool = True) -> list[MethodChoice]:
    """Every registry method, with whether and how it can run here (runnable first)."""
    out = []
    names = available_methods(include_unavailable=include_unavailable)
    if config.methods is not None:
        unknown = [m for m in config.methods if m not in names]
        if unknown:
            raise ValueError(f"unknown method(s) {', '.join(unknown)}; available: {', '.join(names)}")
        names = [n for n in names if n in config.methods]
    for name in names:
        info = method_info(name)
        params = builder_parameters(name)
        reason = ""
        if not info.available:
            reason = info.error or "its module failed to import"
        elif "smpl" in info.needs and config.smpl_dir is None:
            reason = "needs the SMPL body files (start the studio with --smpl-dir)"
        elif "checkpoint" in info.needs and name not in config.checkpoints:
            reason = f"needs a checkpoint (start the studio with --checkpoint {name}=PATH)"
        learned = "checkpoint" in params
        weights = ""
        if learned:
            if name in config.checkpoints:
                weights = f"your checkpoint ({Path(str(config.checkpoints[name])).name})"
            else:
                shipped = default_weights(name) if config.smpl_dir is None else None
                weights = shipped or "untrained (no checkpoint given to this server)"
                if not shipped and checkpoint_hint(name):
                    weights += f"; for trained weights start the studio with {checkpoint_hint(name)}"
        untrained = learned and weights.startswith("untrained")
        iterative = "num_iters" in params
        out.append(MethodChoice(name=name, family=info.family, description=info.description,
                                runnable=not reason, reason=reason, untrained=untrained, iterative=iterative,
                                weights=weights))
    out.sort(key=lambda c: (not c.runnable, c.untrained, c.name))
    return out


def check_files(config: StudioConfig) -> "MethodRunner":
    """Open every file the command line named before the studio starts: the SMPL folder
    (loaded as a body) and each ``--checkpoint`` (its method is built, which loads and
    checks it). A file that cannot serve gives a ValueError naming the file, what was
    expected, what was found and what to do — at start-up, not when Run is pressed.
    Returns the :class:`MethodRunner` holding the methods it built, for the studio to use
    (so a checkpoint is not loaded twice)."""
    from core.models.official import OFFICIAL_CHECKPOINTS

    if config.smpl_dir is not None:
        from core.body import load_body

        try:
            load_body("smpl", data_dir=config.smpl_dir)
        except Exception as e:  # noqa: BLE001 - every failure becomes the one start-up message
            raise ValueError(f"--smpl-dir {config.smpl_dir}: {_first_lines(e)}\n  expected: a SPIN/PyMAF data "
                             f"folder with SMPL_NEUTRAL.pkl (SMPL 1.0, from the SMPL or SMPLify website), directly "
                             f"or in smpl/ or data/smpl/\n  to do: point --smpl-dir there, or leave it out to use "
                             f"the open body") from None
    runner = MethodRunner(config)
    for name, path in config.checkpoints.items():
        try:
            runner._get(name, runner.builder_kwargs(name))
        except Exception as e:  # noqa: BLE001
            f = OFFICIAL_CHECKPOINTS.get(name)
            expected = (f"{f.file} from {f.project}: {f.holds}"
                        + (" (or a project .safetensors of this method)" if f.project_format else "")
                        if f else "a checkpoint this method can load")
            todo = ("pass the file named above" + (" together with --smpl-dir (its SMPL body)"
                                                   if f is not None and f.smpl and config.smpl_dir is None
                                                   and path.suffix != ".safetensors" else "")
                    + f", or leave --checkpoint {name} out to use the default weights")
            raise ValueError(f"--checkpoint {name}={path}: {_first_lines(e)}\n  expected: {expected}\n"
                             f"  to do: {todo}") from None
    return runner


def _first_lines(e: BaseException, n: int = 4) -> str:
    """An exception's message: its first ``n`` lines (a key dump is cut) and any "hint:"
    lines (what the file looks like), or its type when it has no message."""
    lines = (str(e) or type(e).__name__).splitlines()
    hints = [ln.strip() for ln in lines[n:] if ln.strip().startswith("hint:")]
    return "\n  ".join(lines[:n] + (["…"] if len(lines) > n + len(hints) else []) + hints)


class MethodRunner:
    """Builds registry methods once (per configuration) and runs them; thread-safe.

    Builder keyword arguments come from the config: ``smpl_dir`` (when given and accepted),
    ``checkpoint`` (from ``config.checkpoints[name]``), ``config.method_options[name]``,
    and per-call overrides (e.g. ``num_iters``).
    """

    def __init__(self, config: StudioConfig):
        self.config = config
        self._methods: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._run_locks: dict[tuple, threading.Lock] = {}

    def builder_kwargs(self, name: str, **overrides) -> dict:
        """The keyword arguments :meth:`run` passes to ``create_method(name, ...)``."""
        params = builder_parameters(name)
        kwargs: dict = {}
        if self.config.smpl_dir is not None and _accepts(params, "smpl_dir"):
            kwargs["smpl_dir"] = str(self.config.smpl_dir)
        if name in self.config.checkpoints:
            if not _accepts(params, "checkpoint"):
                raise ValueError(f"method {name!r} takes no checkpoint, but --checkpoint {name}=... was given")
            kwargs["checkpoint"] = str(self.config.checkpoints[name])
        kwargs.update(self.config.method_options.get(name, {}))
        for k, v in overrides.items():  # None is passed on too (e.g. record_every=None)
            if _accepts(params, k):
                kwargs[k] = v
        return kwargs

    def _get(self, name: str, kwargs: dict):
        key = (name, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
        with self._lock:
            method = self._methods.get(key)
            if method is None:
                method = create_method(name, **kwargs)
                self._methods[key] = method
            lock = self._run_locks.setdefault(key, threading.Lock())
        return method, lock

    def run(self, name: str, inputs: MethodInputs, progress: Optional[ProgressFn] = None, **overrides) -> Trace:
        """Run ``name`` on ``inputs`` into a Trace (one run per built method at a time).

        Raises:
            ValueError: the inputs lack something the method needs (e.g. keypoints).
        """
        missing = missing_needs(name, inputs)
        if missing:
            raise ValueError(f"{name} needs {', '.join(missing)}, which this person does not have "
                             f"(detect keypoints or upload an OpenPose JSON)")
        method, lock = self._get(name, self.builder_kwargs(name, **overrides))
        with lock:
            trace = method.run(inputs, progress=progress)
        if not isinstance(trace, Trace):
            raise TypeError(f"method {name!r} returned {type(trace).__name__}, expected core.trace.Trace")
        if trace.steps:
            trace.meta["quality"] = assess_trace(trace).to_meta()
        return trace
