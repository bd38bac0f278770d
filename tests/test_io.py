"""Tests for core.utils.io: atomic writes and the restricted SMPL-pickle loader."""
import os
import pickle
import struct
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp

from core.utils import io as uio
from core.utils.io import (ChumpyStandIn, UnsafePickleError, atomic_savez, atomic_write_bytes,
                           restricted_load_pickle, to_plain_arrays)


# ------------------------------------------------------------------ atomic writes
def test_atomic_write_bytes_and_failure_keeps_old(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old content")
    assert target.read_bytes() == b"old content"

    def failing_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(uio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        atomic_write_bytes(target, b"new content that never lands")
    monkeypatch.undo()
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # no temp files left


def test_atomic_savez_exact_name_and_partial_write(tmp_path, monkeypatch):
    target = tmp_path / "arrays.data"  # no .npz suffix appended
    atomic_savez(target, a=np.arange(4), b=np.eye(2))
    with np.load(target, allow_pickle=False) as z:
        assert np.array_equal(z["a"], np.arange(4))

    def partial_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise RuntimeError("crash mid-write")

    monkeypatch.setattr(np, "savez", partial_savez)
    with pytest.raises(RuntimeError, match="mid-write"):
        atomic_savez(target, a=np.zeros(3))
    monkeypatch.undo()
    with np.load(target, allow_pickle=False) as z:
        assert np.array_equal(z["b"], np.eye(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.data"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing_dir" / "x", b"")


# ------------------------------------------------------------------ malicious pickles
class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _EvalEvil:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    sentinel = tmp_path / "pwned"
    payload = pickle.dumps({"v_template": np.zeros(3), "x": _Evil(f"touch {sentinel}")}, protocol=2)
    # control: the same payload through plain pickle really runs the command
    control = tmp_path / "control"
    pickle.loads(pickle.dumps({"x": _Evil(f"touch {control}")}, protocol=2))
    assert control.exists()
    with pytest.raises(UnsafePickleError) as err:
        restricted_load_pickle(payload)
    assert "system" in str(err.value) and "SMPL-style" in str(err.value)
    assert isinstance(err.value, ValueError)
    assert not sentinel.exists()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError):
        restricted_load_pickle(path)
    assert not sentinel.exists()
    for proto in (0, 2, 5):
        with pytest.raises(UnsafePickleError, match=r"(__builtin__|builtins)\.eval"):
            restricted_load_pickle(pickle.dumps(_EvalEvil(), protocol=proto))


def test_codecs_encode_is_latin1_only():
    import _codecs

    class CodecAbuse:
        def __reduce__(self):
            return (_codecs.encode, ("abc", "rot13"))

    with pytest.raises(UnsafePickleError, match="rot13"):
        restricted_load_pickle(pickle.dumps(CodecAbuse(), protocol=2))


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_arrays_and_sparse_roundtrip(protocol):
    dense = np.zeros((5, 7))
    dense[1, 2], dense[4, 6], dense[0, 0] = 1.5, -2.0, 3.0
    data = {
        "v_template": np.random.default_rng(0).normal(size=(6, 3)),
        "f": np.arange(9, dtype=np.uint32).reshape(3, 3),
        "kintree_table": np.array([[4294967295, 0], [0, 1]], dtype=np.int64),
        "flags": np.array([True, False]),
        "weights": np.ones((6, 2), dtype=np.float32),
        "scalar": np.float32(2.5),
        "J_regressor": sp.csc_matrix(dense),
        "J_regressor_csr": sp.csr_matrix(dense),
        "bs_style": "lbs",
        "nested": [np.arange(3), 4],
    }
    out = restricted_load_pickle(pickle.dumps(data, protocol=protocol))
    assert set(out) == set(data)
    for k in ("v_template", "f", "kintree_table", "flags", "weights"):
        assert out[k].dtype == data[k].dtype and np.array_equal(out[k], data[k])
    assert out["scalar"] == np.float32(2.5) and out["bs_style"] == "lbs"
    assert sp.isspmatrix_csc(out["J_regressor"]) and sp.isspmatrix_csr(out["J_regressor_csr"])
    plain = to_plain_arrays(out)
    assert isinstance(plain["J_regressor"], np.ndarray) and np.array_equal(plain["J_regressor"], dense)
    assert np.array_equal(plain["J_regressor_csr"], dense)
    assert sp.issparse(to_plain_arrays(out, densify_sparse=False)["J_regressor"])


def _install_fake_chumpy():
    pkg = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")

    class Ch:  # imitates chumpy: value in __dict__['x'], plus bookkeeping
        def __init__(self, x):
            self.x = x
            self.label = None
            self._dirty_vars = set()

    class Reshape:
        def __init__(self, a, want_shape):
            self.a = a
            self.want_shape = want_shape

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Reshape.__module__, Reshape.__qualname__ = "chumpy.reordering", "Reshape"
    ch.Ch, reordering.Reshape = Ch, Reshape
    pkg.ch, pkg.reordering = ch, reordering
    sys.modules.update({"chumpy": pkg, "chumpy.ch": ch, "chumpy.reordering": reordering})
    return Ch, Reshape


def _remove_fake_chumpy():
    for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
        sys.modules.pop(name, None)


def test_fake_chumpy_object_loads_as_array():
    shapedirs = np.random.default_rng(1).normal(size=(6, 3, 10))
    try:
        Ch, Reshape = _install_fake_chumpy()
        payload = pickle.dumps({
            "shapedirs": Ch(shapedirs),
            "posedirs": Reshape(Ch(np.arange(12.0)), (3, 4)),
            "v_template": np.zeros((6, 3)),
        }, protocol=2)
    finally:
        _remove_fake_chumpy()
    assert "chumpy" not in sys.modules
    out = restricted_load_pickle(payload)
    assert isinstance(out["shapedirs"], ChumpyStandIn)
    assert out["shapedirs"].chumpy_class == "chumpy.ch.Ch"
    assert np.array_equal(np.asarray(out["shapedirs"]), shapedirs)
    assert np.array_equal(out["shapedirs"].r, shapedirs)
    plain = to_plain_arrays(out)
    assert isinstance(plain["shapedirs"], np.ndarray) and np.array_equal(plain["shapedirs"], shapedirs)
    assert np.array_equal(plain["posedirs"], np.arange(12.0).reshape(3, 4))
    assert "chumpy" not in sys.modules  # nothing was imported


# ------------------------------------------------------------------ Python 2 pickles (hand-built)
def _py2_str(b: bytes) -> bytes:  # a Python 2 `str`: SHORT_BINSTRING / BINSTRING
    return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<I", len(b)) + b)


def _py2_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _py2_float64_array(values: np.ndarray) -> bytes:
    """Opcodes numpy (Python 2, protocol 2) writes for a 1-D little-endian float64 array."""
    dtype = (_py2_global("numpy", "dtype") + _py2_str(b"f8") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _py2_str(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (_py2_global("numpy.core.multiarray", "_reconstruct") + _py2_global("numpy", "ndarray")
            + b"K\x00\x85" + _py2_str(b"b") + b"\x87R"
            + b"(K\x01" + b"K" + bytes([len(values)]) + b"\x85" + dtype + b"\x89"
            + _py2_str(values.astype("<f8").tobytes()) + b"tb")


def test_python2_style_pickle_with_chumpy_and_latin1_bytes():
    x = np.array([1.0, -2.5, 3.25, 255.0 / 7.0])  # raw bytes include values >= 0x80
    ch_newobj = (_py2_global("chumpy.ch", "Ch") + b")\x81" + b"}" + _py2_str(b"x")
                 + _py2_float64_array(x) + b"s" + b"b")
    ch_reconstructor = (_py2_global("copy_reg", "_reconstructor")
                        + b"(" + _py2_global("chumpy.ch", "Ch") + _py2_global("__builtin__", "object")
                        + b"NtR" + b"}" + _py2_str(b"x") + _py2_float64_array(2 * x) + b"s" + b"b")
    payload = (b"\x80\x02}" + _py2_str(b"shapedirs") + ch_newobj + b"s"
               + _py2_str(b"J") + ch_reconstructor + b"s"
               + _py2_str(b"v_template") + _py2_float64_array(x) + b"s" + b".")
    with pytest.raises(ImportError):  # plain pickle needs chumpy
        pickle.loads(payload, encoding="latin1")
    out = to_plain_arrays(restricted_load_pickle(payload))
    assert np.array_equal(out["v_template"], x)
    assert np.array_equal(out["shapedirs"], x)
    assert np.array_equal(out["J"], 2 * x)


def test_unknown_chumpy_op_gives_clear_error():
    obj = ChumpyStandIn()
    obj.chumpy_class = "chumpy.ch_ops.sum"
    obj.__setstate__({"a": np.ones(3), "axis": 0})
    with pytest.raises(ValueError, match="chumpy.ch_ops.sum"):
        obj.to_array()


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    """A process SIGKILLed inside ``atomic_open`` leaves ``.<name>.<pid>.<rand>.tmp``; the
    next atomic write of that name removes it (three kills leave one file, not three);
    temp files of live processes are kept."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from core.utils.io import atomic_write_bytes, remove_stale_temp_files

    root = Path(__file__).resolve().parents[1]
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from core.utils.io import atomic_open\n"
            "with atomic_open(sys.argv[2]) as f:\n    f.write(b'x' * 1000); f.flush(); print('in', flush=True); "
            "time.sleep(60)")
    target = tmp_path / "run.npz"
    for _ in range(3):
        p = subprocess.Popen([sys.executable, "-c", code, str(root), str(target)], stdout=subprocess.PIPE)
        assert p.stdout.readline().strip() == b"in"
        p.send_signal(signal.SIGKILL)
        p.wait()
    left = list(tmp_path.glob(".run.npz.*.tmp"))   # each writer removed the previous victim's file
    assert len(left) == 1 and f".{p.pid}." in left[0].name
    mine = tmp_path / f".run.npz.{os.getpid()}.abcd.tmp"
    mine.write_bytes(b"in progress")
    other = tmp_path / f".other.npz.{p.pid}.efgh.tmp"
    other.write_bytes(b"x")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(x.name for x in tmp_path.glob(".*.tmp")) == sorted([mine.name, other.name])
    assert remove_stale_temp_files(tmp_path) == [other] and mine.exists()



def test_api_request_folders_expire(monkeypatch, tmp_path):
    import os
    import time

    import studio.tempfiles as T

    monkeypatch.setattr(T, "_ROOT", None)
    monkeypatch.setattr(T.tempfile, "tempdir", str(tmp_path))
    a = T.request_folder()
    (a / "overlay.jpg").write_bytes(b"x")
    old = time.time() - T.REQUEST_TTL_S - 5
    os.utime(a, (old, old))
    b = T.request_folder()                 # a new request sweeps the expired one
    assert not a.exists() and b.is_dir()
    assert T.process_root().name.startswith(f"hmr-studio-{os.getpid()}-")
    T._remove(T.process_root())


def test_a_self_referencing_chumpy_pickle_is_a_sentence():
    """A chumpy Reshape whose operand is itself (RecursionError before) is refused with a
    message, not a Python error."""
    try:
        Ch, Reshape = _install_fake_chumpy()
        loop = Reshape(None, (3, 4))
        loop.a = loop
        payload = pickle.dumps({"posedirs": loop}, protocol=2)
    finally:
        _remove_fake_chumpy()
    out = restricted_load_pickle(payload)
    with pytest.raises(ValueError, match="refers to itself; the file is corrupt or crafted"):
        to_plain_arrays(out)
