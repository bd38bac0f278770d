"""Method registry: name → how to build a method and run it into a :class:`~core.trace.Trace`.

Like timm's model registry: methods register themselves with :func:`register_method`
(as a decorator on a builder, or as a call), and front ends use :func:`available_methods`,
:func:`method_info` and :func:`create_method` without knowing any model class::

    from core.methods import create_method, MethodInputs
    method = create_method("spin", pretrained=True)
    trace = method.run(MethodInputs.from_image(image, center, scale, keypoints_full=kp))

Built-in methods live in other ``core`` modules (listed in :data:`BUILTIN_METHOD_MODULES`)
and are imported lazily the first time the registry is queried. A module that is not
part of this build is skipped; one that fails to import is recorded with its error, so
:func:`method_info` can say why a method is unavailable instead of the method silently
missing.
"""
from __future__ import annotations

import importlib
import re
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import numpy as np

from core.trace import Trace

__all__ = [
    "default_weights",
    "NUM_KEYPOINTS",
    "MethodInputs",
    "Method",
    "ProgressFn",
    "MethodInfo",
    "MethodUnavailableError",
    "BUILTIN_METHOD_MODULES",
    "register_method",
    "unregister_method",
    "available_methods",
    "method_info",
    "create_method",
    "run_method",
    "missing_needs",
    "failed_method_modules",
]

NUM_KEYPOINTS = 49  # SPIN's 49-joint layout (OpenPose-25 + 24 "GT" joints)

# Module → method names it is expected to register. Only used to explain failures: if the
# module raises on import, those names are reported as unavailable with the error.
BUILTIN_METHOD_MODULES: dict[str, tuple[str, ...]] = {
    "core.models.registered_methods": ("hmr", "pymaf", "cliff"),
    "core.fitting.smplify": ("smplify", "spin"),
    "core.fitting.eft": ("eft",),
    "core.fitting.meta_hmr": ("meta-hmr",),
    "core.models.meshpose": ("meshpose",),
}

ProgressFn = Callable[[float, str], None]
"""``progress(fraction in [0, 1], message)`` called by methods while they run."""

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


# ----------------------------------------------------------------------------- inputs
def _kp(value: Any, name: str) -> Optional[np.ndarray]:
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"MethodInputs.{name}: expected ({NUM_KEYPOINTS}, 3) = (x, y, confidence) in "
                         f"SPIN's 49-joint order, got {a.shape}; map other layouts with core.body "
                         f"joint conventions and set missing joints' confidence to 0")
    return a


def _rgb_uint8(value: Any, name: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"MethodInputs.{name}: expected an (H, W, 3) uint8 RGB image, got shape "
                         f"{a.shape} dtype {a.dtype} (convert OpenCV BGR with cv2.cvtColor)")
    return a


@dataclass(eq=False)
class MethodInputs:
    """What every method receives.

    Attributes:
        image: (H, W, 3) uint8 RGB, the full image.
        crop: (224, 224, 3) uint8 RGB, SPIN-style crop of the person (see
            :func:`core.geometry.crop_image`).
        center: (2,) box centre in full-image pixels.
        scale: box side / 200 (SPIN convention).
        keypoints: (49, 3) SPIN-49 keypoints (x, y, conf) in *crop* pixels, or None.
        keypoints_full: (49, 3) the same keypoints in full-image pixels, or None.
    """

    image: np.ndarray
    crop: np.ndarray
    center: np.ndarray
    scale: float
    keypoints: Optional[np.ndarray] = None
    keypoints_full: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.image = _rgb_uint8(self.image, "image")
        self.crop = _rgb_uint8(self.crop, "crop")
        self.center = np.asarray(self.center, dtype=np.float64)
        if self.center.shape != (2,):
            raise ValueError(f"MethodInputs.center: expected (2,) = (cx, cy), got {self.center.shape}")
        self.scale = float(self.scale)
        if not self.scale > 0:
            raise ValueError(f"MethodInputs.scale must be > 0 (box side / 200), got {self.scale}")
        self.keypoints = _kp(self.keypoints, "keypoints")
        self.keypoints_full = _kp(self.keypoints_full, "keypoints_full")

    @classmethod
    def from_image(cls, image: np.ndarray, center, scale: float,
                   keypoints_full: Optional[np.ndarray] = None, res: int = 224) -> "MethodInputs":
        """Build inputs from a full image and a box: cuts the crop and maps the keypoints.

        Args:
            image: (H, W, 3) uint8 RGB.
            center: (2,) box centre (pixels). scale: box side / 200.
            keypoints_full: optional (49, 3) keypoints in full-image pixels.
            res: crop size (224).
        """
        from core.geometry import crop_image, points_to_crop

        image = _rgb_uint8(image, "image")
        crop = crop_image(image, center, scale, res)
        kp_crop = None
        if keypoints_full is not None:
            kp_full = _kp(keypoints_full, "keypoints_full")
            kp_crop = np.concatenate([points_to_crop(kp_full[:, :2], center, scale, res), kp_full[:, 2:]], 1)
        return cls(image=image, crop=crop, center=center, scale=scale, keypoints=kp_crop,
                   keypoints_full=keypoints_full)


@runtime_checkable
class Method(Protocol):
    """A runnable method: ``run(inputs, progress=None) -> Trace``."""

    def run(self, inputs: MethodInputs, progress: Optional[ProgressFn] = None) -> Trace:
        ...


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MethodInfo:
    """Registry entry.

    Attributes:
        name: registry name (lowercase, e.g. ``"pymaf"``).
        family: method family for grouping in the UI (``"spin"``, ``"pymaf"``,
            ``"meta_hmr"``, ``"meshpose"`` …).
        description: one line for humans.
        needs: what the method requires: input fields (``"keypoints"``,
            ``"keypoints_full"``) and resources (e.g. ``"smpl"`` for the user's SMPL
            files, ``"checkpoint"``); see :func:`missing_needs`.
        builder: ``builder(**config) -> Method``; None when unavailable.
        module: module that registered it (or failed to).
        available: False when its module failed to import.
        error: why it is unavailable (the import error), else None.
    """

    name: str
    family: str
    description: str
    needs: tuple[str, ...] = ()
    builder: Optional[Callable[..., Method]] = None
    module: Optional[str] = None
    available: bool = True
    error: Optional[str] = None


class MethodUnavailableError(RuntimeError):
    """The method is known but cannot be built here (its module failed to import)."""


_LOCK = threading.RLock()
_REGISTRY: dict[str, MethodInfo] = {}
_FAILED_MODULES: dict[str, str] = {}
_BUILTINS_LOADED = False


def register_method(name: str, *, builder: Optional[Callable[..., Method]] = None, description: str,
                    family: str, needs: tuple[str, ...] = (), overwrite: bool = False):
    """Register a method builder under ``name``.

    Use as a decorator on a builder (a function or class returning a :class:`Method`)::

        @register_method("spin", description="HMR regressor, 3 IEF steps", family="spin")
        def build_spin(pretrained: bool = True) -> Method: ...

    or as a call: ``register_method("spin", builder=build_spin, description=..., family=...)``.

    Args:
        name: lowercase registry name (letters, digits, ``_ . -``).
        builder: ``builder(**config) -> Method``; omit to get a decorator.
        description: one line for humans.
        family: method family (grouping in the UI).
        needs: requirements, see :class:`MethodInfo`.
        overwrite: allow replacing an existing registration (otherwise ValueError).
    Returns:
        The builder (so the decorator leaves it unchanged), or the decorator.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"register_method: name must be lowercase letters/digits/'_.-', got {name!r}")
    if not isinstance(family, str) or not family:
        raise ValueError(f"register_method({name!r}): family must be a non-empty string")
    if isinstance(needs, str):
        raise TypeError(f"register_method({name!r}): needs must be a tuple of strings, e.g. ({needs!r},)")
    needs = tuple(needs)
    if not all(isinstance(n, str) and n for n in needs):
        raise TypeError(f"register_method({name!r}): needs must be non-empty strings, got {needs!r}")

    def _register(b: Callable[..., Method]) -> Callable[..., Method]:
        if not callable(b):
            raise TypeError(f"register_method({name!r}): builder must be callable, got {type(b).__name__}")
        with _LOCK:
            if name in _REGISTRY and _REGISTRY[name].available and not overwrite:
                raise ValueError(f"register_method: a method named {name!r} is already registered by "
                                 f"{_REGISTRY[name].module}; pass overwrite=True to replace it")
            _REGISTRY[name] = MethodInfo(name=name, family=family, description=description, needs=needs,
                                         builder=b, module=getattr(b, "__module__", None))
        return b

    if builder is None:
        return _register
    return _register(builder)


def unregister_method(name: str) -> None:
    """Remove ``name`` from the registry (for tests and plugins). Unknown names: KeyError."""
    with _LOCK:
        del _REGISTRY[name]


def _load_builtin_methods() -> None:
    """Import the built-in method modules once, recording failures."""
    global _BUILTINS_LOADED
    with _LOCK:
        if _BUILTINS_LOADED:
            return
        _BUILTINS_LOADED = True
        for module, expected in BUILTIN_METHOD_MODULES.items():
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
                    continue  # the module is not part of this build: nothing to report
                _record_failure(module, expected, e)
            except Exception as e:  # noqa: BLE001 - any import-time error must not break the registry
                _record_failure(module, expected, e)


def _record_failure(module: str, expected: tuple[str, ...], e: BaseException) -> None:
    last = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" (at {last.filename}:{last.lineno})" if last else ""
    msg = f"{type(e).__name__}: {e}{where}"
    _FAILED_MODULES[module] = msg
    for name in expected:
        if name not in _REGISTRY:
            _REGISTRY[name] = MethodInfo(name=name, family="unknown", description="(failed to load)",
                                         module=module, available=False,
                                         error=f"importing {module} failed: {msg}")


def failed_method_modules() -> dict[str, str]:
    """Built-in method modules that failed to import → their error message."""
    _load_builtin_methods()
    with _LOCK:
        return dict(_FAILED_MODULES)


def available_methods(family: Optional[str] = None, include_unavailable: bool = False) -> list[str]:
    """Sorted registry names.

    Args:
        family: only this family.
        include_unavailable: also list methods whose module failed to import.
    """
    _load_builtin_methods()
    with _LOCK:
        return sorted(n for n, i in _REGISTRY.items()
                      if (include_unavailable or i.available) and (family is None or i.family == family))


def method_info(name: str) -> MethodInfo:
    """Registry entry for ``name`` (check ``.available`` / ``.error``).

    Raises:
        KeyError: unknown name; the message lists the available names and any built-in
            modules that failed to import.
    """
    _load_builtin_methods()
    with _LOCK:
        if name in _REGISTRY:
            return _REGISTRY[name]
        names = sorted(n for n, i in _REGISTRY.items() if i.available)
        msg = f"unknown method {name!r}; available: {', '.join(names) if names else '(none)'}"
        if _FAILED_MODULES:
            msg += "; modules that failed to import: " + "; ".join(f"{m}: {err}" for m, err in _FAILED_MODULES.items())
        raise KeyError(msg)


def create_method(name: str, **config: Any) -> Method:
    """Build the method registered as ``name`` with ``builder(**config)``.

    Raises:
        KeyError: unknown name (lists available ones).
        MethodUnavailableError: its module failed to import (message has the error).
        TypeError: the builder returned something without a ``run`` method.
    """
    info = method_info(name)
    if not info.available or info.builder is None:
        raise MethodUnavailableError(f"method {name!r} is unavailable: {info.error}")
    method = info.builder(**config)
    if not callable(getattr(method, "run", None)):
        raise TypeError(f"builder of method {name!r} ({info.module}) returned {type(method).__name__}, "
                        f"which has no run(inputs, progress=None) -> Trace")
    return method


def run_method(name: str, inputs: MethodInputs, progress: Optional[ProgressFn] = None, **config: Any) -> Trace:
    """``create_method(name, **config).run(inputs, progress)``, checking that a Trace comes back."""
    missing = missing_needs(name, inputs)
    if missing:
        raise ValueError(f"method {name!r} needs {', '.join(missing)}, which the inputs lack")
    trace = create_method(name, **config).run(inputs, progress=progress)
    if not isinstance(trace, Trace):
        raise TypeError(f"method {name!r} returned {type(trace).__name__}, expected core.trace.Trace")
    return trace


_INPUT_NEEDS = {"keypoints": "keypoints", "keypoints_full": "keypoints_full"}


def default_weights(name: str, body_name: str = "open") -> Optional[str]:
    """What method `name` runs on when the user gives no checkpoint: a one-line description
    of the weights shipped for it (``assets/weights``, see ``core.models.shipped``), or None
    when it has none here (then a learned method is untrained)."""
    from core.models.shipped import method_weights

    found = method_weights(name, body_name)
    return found.summary if found is not None else None


def missing_needs(name: str, inputs: MethodInputs) -> list[str]:
    """The input-type needs of ``name`` (``"keypoints"``, ``"keypoints_full"``) that
    ``inputs`` does not provide (resource needs such as ``"smpl"`` are not checked here)."""
    info = method_info(name)
    return [n for n in info.needs if n in _INPUT_NEEDS and getattr(inputs, _INPUT_NEEDS[n]) is None]
