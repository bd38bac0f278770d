"""Safe file I/O: atomic writes and a restricted unpickler for SMPL-style ``.pkl`` files.

- :func:`atomic_write_bytes`, :func:`atomic_savez`, :func:`atomic_open`: write to a
  temporary file in the destination directory, fsync, then ``os.replace`` it over the
  target, so readers see either the old file or the complete new one, never a partial
  file; on failure the temporary file is removed and the old file is untouched.
- :func:`restricted_load_pickle`: loads the pickles that the SMPL ecosystem ships
  (``SMPL_NEUTRAL.pkl``, ``gmm_08.pkl`` …: dicts of NumPy arrays, SciPy sparse matrices and
  chumpy arrays, often written by Python 2) **without executing arbitrary code** and
  without needing chumpy. Every global a pickle names is checked against an explicit
  allow-list; anything else raises :class:`UnsafePickleError` before it is looked up.
"""
from __future__ import annotations

import contextlib
import copyreg
import io
import os
import pickle
import re
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import IO, Any, Iterator, Union

import numpy as np

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_savez",
    "pid_alive",
    "remove_stale_temp_files",
    "UnsafePickleError",
    "ChumpyStandIn",
    "restricted_load_pickle",
    "to_plain_arrays",
]

PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------- atomic writes
def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # PermissionError: it exists but is not ours
    return pid > 0


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _temp_prefix(name: str) -> str:
    return f".{name}.{os.getpid()}."


def remove_stale_temp_files(directory: PathLike, name: str = "*") -> list[Path]:
    """Delete the temporary files of :func:`atomic_open` left in ``directory`` by processes
    that no longer run (killed mid-write: SIGKILL, power loss). Files of running processes
    are kept.

    Args:
        directory: folder to clean.
        name: only the temporary files for this destination name (default: all).
    Returns:
        The removed paths.
    """
    removed = []
    for p in Path(directory).glob(f".{glob_escape(name) if name != '*' else '*'}.*.tmp"):
        m = _TEMP_NAME.match(p.name)
        if m is None or (name != "*" and m["name"] != name) or pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_open(path: PathLike) -> Iterator[IO[bytes]]:
    """Context manager yielding a binary file whose content replaces ``path`` atomically
    when the ``with`` block exits normally; if the block raises, ``path`` is left as it was
    and the temporary file is deleted.

    The temporary file is ``.<name>.<pid>.<random>.tmp`` next to ``path``; those of killed
    processes for the same name are removed before writing (:func:`remove_stale_temp_files`).

    Args:
        path: destination file; its directory must exist.
    Yields:
        A writable binary file object (a temporary file next to ``path``).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"atomic write: directory {str(directory)!r} does not exist; create it first")
    remove_stale_temp_files(directory, path.name)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result ordinary permissions.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory + ``os.replace``).

    Args:
        path: destination file.
        data: bytes-like content.
    """
    with atomic_open(path) as f:
        f.write(data)


def atomic_savez(path: PathLike, compress: bool = False, **arrays: Any) -> None:
    """``np.savez`` (or ``np.savez_compressed``) to exactly ``path``, atomically.

    Unlike ``np.savez(str_path, ...)`` no ``.npz`` suffix is appended.

    Args:
        path: destination file.
        compress: use zip deflate compression.
        **arrays: name → array-like, as for ``np.savez``.
    """
    with atomic_open(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


# ----------------------------------------------------------------------------- restricted unpickling
class UnsafePickleError(ValueError):
    """A pickle referenced a global outside the SMPL-file allow-list."""


class ChumpyStandIn:
    """Inert stand-in for a chumpy object (``chumpy.ch.Ch`` and its ops) found in a pickle.

    It records the pickled state and never runs chumpy code. ``to_array()`` (also
    ``.r``, ``np.asarray(obj)``) gives the value: ``state['x']`` for a plain ``Ch``; a few
    reordering/arithmetic ops that wrap other chumpy objects are evaluated from their
    operands (``Reshape``, ``transpose``, ``Select``, ``add``, ``subtract``, ``multiply``,
    ``divide``, ``negative``); anything else raises ValueError naming the class.

    Attributes:
        chumpy_class: the original dotted class name, e.g. ``"chumpy.ch.Ch"``.
        state: the pickled ``__dict__`` state (dict).
        args: constructor arguments, if the pickle supplied any.
    """

    chumpy_class = "chumpy.?"
    args: tuple = ()
    state: dict = {}  # replaced (never mutated) by __setstate__; class default for bare objects

    def __new__(cls, *args: Any, **kwargs: Any):
        obj = super().__new__(cls)
        obj.args = args
        obj.state = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # accept any constructor call
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged: dict = {}
            for part in state:
                if isinstance(part, dict):
                    merged.update(part)
            state = merged
        self.state = dict(state) if isinstance(state, dict) else {"state": state}

    def __repr__(self) -> str:
        return f"<ChumpyStandIn {self.chumpy_class} keys={sorted(map(str, self.state))}>"

    def to_array(self) -> np.ndarray:
        return _resolve_chumpy(self)

    @property
    def r(self) -> np.ndarray:  # chumpy's name for the value
        return self.to_array()

    def __array__(self, dtype=None, copy=None):
        arr = self.to_array()
        return arr.astype(dtype) if dtype is not None else arr


_MAX_CHUMPY_DEPTH = 64


def _resolve_chumpy(obj: ChumpyStandIn, seen: tuple = ()) -> np.ndarray:
    if any(o is obj for o in seen):
        raise ValueError(f"the chumpy object {obj.chumpy_class} refers to itself; the file is corrupt or crafted")
    if len(seen) >= _MAX_CHUMPY_DEPTH:
        raise ValueError(f"chumpy objects nested more than {_MAX_CHUMPY_DEPTH} deep; the file is corrupt or crafted")
    seen = seen + (obj,)

    def _value(x: Any) -> np.ndarray:
        return _resolve_chumpy(x, seen) if isinstance(x, ChumpyStandIn) else np.asarray(x)

    st = obj.state
    kind = obj.chumpy_class.rsplit(".", 1)[-1]
    if "x" in st:
        return np.asarray(_value(st["x"]))
    try:
        if kind == "Reshape":
            return _value(st["a"]).reshape(st["want_shape"])
        if kind == "transpose":
            return np.transpose(_value(st["a"]), st.get("axes"))
        if kind == "Select":
            out = _value(st["a"]).ravel()[np.asarray(st["idxs"])]
            shape = st.get("preferred_shape")
            return out.reshape(shape) if shape is not None else out
        binary = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}
        if kind in binary:
            return binary[kind](_value(st["a"]), _value(st["b"]))
        if kind == "negative":
            return -_value(st["a"])
    except KeyError as e:
        raise ValueError(f"chumpy stand-in {obj.chumpy_class}: pickled state lacks {e}; "
                         f"keys are {sorted(map(str, st))}") from None
    raise ValueError(f"cannot turn the chumpy object {obj.chumpy_class} into an array without chumpy "
                     f"(state keys {sorted(map(str, st))}); only Ch (state 'x') and simple ops are supported")


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to latin-1, which Python 3 protocol-2 pickles use for bytes."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r} (only latin-1 is "
                                f"used by array pickles)")
    return obj.encode("latin1", errors)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    try:  # NumPy >= 2 keeps the implementation in numpy._core
        import numpy._core.multiarray as core_multiarray  # type: ignore
        import numpy._core.numeric as core_numeric  # type: ignore
    except ImportError:
        import numpy.core.multiarray as core_multiarray  # type: ignore
        import numpy.core.numeric as core_numeric  # type: ignore
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = core_multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = core_multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = core_numeric._frombuffer
    return allowed


def _sparse_globals() -> dict[tuple[str, str], Any]:
    import scipy.sparse as sp

    allowed = {}
    for fmt, cls in (("csc", sp.csc_matrix), ("csr", sp.csr_matrix)):
        allowed[(f"scipy.sparse._{fmt}", f"{fmt}_matrix")] = cls
        allowed[(f"scipy.sparse.{fmt}", f"{fmt}_matrix")] = cls
    return allowed


def _base_globals() -> dict[tuple[str, str], Any]:
    allowed = {
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,
        ("copyreg", "_reconstructor"): copyreg._reconstructor,
        ("copyreg", "__newobj__"): copyreg.__newobj__,
        ("copy_reg", "__newobj__"): copyreg.__newobj__,
        ("__builtin__", "object"): object,
        ("builtins", "object"): object,
        # chumpy keeps bookkeeping sets in its __dict__; set/frozenset only build containers
        ("__builtin__", "set"): set,
        ("builtins", "set"): set,
        ("__builtin__", "frozenset"): frozenset,
        ("builtins", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_encode,
    }
    allowed.update(_numpy_globals())
    allowed.update(_sparse_globals())
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` only returns allow-listed objects (see module doc)."""

    def __init__(self, file: IO[bytes], encoding: str) -> None:
        super().__init__(file, encoding=encoding, fix_imports=True)
        self._allowed = _base_globals()
        self._chumpy_classes: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if (module == "chumpy" or module.startswith("chumpy.")) and name.isidentifier():
            if key not in self._chumpy_classes:
                self._chumpy_classes[key] = type(
                    f"ChumpyStandIn_{name}", (ChumpyStandIn,), {"chumpy_class": f"{module}.{name}"})
            return self._chumpy_classes[key]
        raise UnsafePickleError(
            f"refusing to unpickle the global '{module}.{name}': only SMPL-style array pickles are "
            f"accepted (NumPy arrays, SciPy csc/csr matrices, chumpy arrays). If you trust the file, "
            f"convert it to .npz with a trusted tool instead.")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing a pickle with persistent ids (not an SMPL-style array pickle)")


def restricted_load_pickle(path_or_bytes: PathLike | bytes | bytearray | memoryview | IO[bytes],
                           encoding: str = "latin1") -> Any:
    """Load an SMPL-style pickle safely (no arbitrary code, no chumpy needed).

    Allowed globals: NumPy array/dtype/scalar reconstruction (``numpy.core`` and
    ``numpy._core`` spellings), ``scipy.sparse`` csc/csr matrices (old and new module
    paths), ``copy_reg``/``copyreg._reconstructor`` and ``__newobj__``,
    ``__builtin__``/``builtins`` ``object``/``set``/``frozenset``, ``_codecs.encode`` (latin-1 only, used by Python 3
    protocol-2 pickles), and any ``chumpy.*`` class, which becomes an inert
    :class:`ChumpyStandIn`. Python 2 pickles load thanks to ``encoding='latin1'``.

    Args:
        path_or_bytes: a path, the pickle's bytes, or a readable binary file object.
        encoding: how Python 2 ``str`` objects are decoded (``'latin1'`` keeps NumPy data
            intact).
    Returns:
        The unpickled object (usually a dict); see :func:`to_plain_arrays`.
    Raises:
        UnsafePickleError: the pickle names any other global (it is not imported or called).
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return _RestrictedUnpickler(io.BytesIO(bytes(path_or_bytes)), encoding).load()
    if hasattr(path_or_bytes, "read"):
        return _RestrictedUnpickler(path_or_bytes, encoding).load()  # type: ignore[arg-type]
    with open(path_or_bytes, "rb") as f:
        return _RestrictedUnpickler(f, encoding).load()


def _plain(value: Any, densify: bool) -> Any:
    import scipy.sparse as sp

    if isinstance(value, ChumpyStandIn):
        return value.to_array()
    if sp.issparse(value):
        if not densify:
            return value
        value.check_format(full_check=True)
        return np.asarray(value.toarray())
    return value


def to_plain_arrays(obj: Any, densify_sparse: bool = True) -> Any:
    """Turn chumpy stand-ins (and, by default, sparse matrices) into NumPy arrays.

    Args:
        obj: a loaded dict (values converted, keys kept), list/tuple (items converted) or a
            single value. Other values (arrays, strings, numbers) pass through unchanged.
        densify_sparse: convert SciPy sparse matrices to dense arrays (after validating
            their structure); with False they are kept sparse.
    Returns:
        The same container type with converted values.
    """
    if isinstance(obj, dict):
        return {k: _plain(v, densify_sparse) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, densify_sparse) for v in obj)
    return _plain(obj, densify_sparse)
