"""Tests for core.trace (round trip, no-pickle loading, validation, atomic save) and for
core.methods (the registry that produces Traces), tested with a dummy method."""
import io
import json
import sys
import zipfile

import numpy as np
import pytest
import torch

import core.methods as M
from core.geometry import points_to_crop
from core.trace import TRACE_VERSION, Step, Trace, TraceFormatError
from tests.helpers.memory import run_capped

RNG = np.random.default_rng(0)


def _make_trace(n_steps=4):
    steps = []
    for i in range(n_steps):
        steps.append(Step(
            label=f"SMPLify body {i}/{n_steps}",
            params={"betas": RNG.normal(size=10), "body_pose": RNG.normal(size=(23, 3, 3)),
                    "cam": torch.tensor([0.9, 0.0, 0.1], dtype=torch.float64)},
            vertices=RNG.normal(size=(50, 3)),
            joints2d=RNG.uniform(0, 224, size=(49, 2)) if i % 2 == 0 else None,
            losses={"reprojection": 100.0 / (i + 1), **({"pose_prior": float(i)} if i > 0 else {})},
            maps={"iuv": RNG.integers(0, 255, size=(8, 8, 3), dtype=np.uint8),
                  "visible": RNG.uniform(size=50) > 0.5} if i == n_steps - 1 else {},
            meta={"iteration": i, "lr": 1e-2, "stage": "body", "converged": i == n_steps - 1},
        ))
    return Trace(
        "smplify",
        RNG.integers(0, 256, size=(224, 224, 3), dtype=np.uint8),
        {"focal": 5000.0, "center": np.array([112.0, 112.0]), "img_res": 224,
         "bbox_center": np.array([320.5, 240.25]), "bbox_scale": 1.7},
        steps,
        body="open",
        target_keypoints=np.concatenate([RNG.uniform(0, 224, size=(49, 2)), RNG.uniform(size=(49, 1))], 1),
        faces=RNG.integers(0, 50, size=(96, 3)),
        meta={"weights": "untrained", "checkpoint": None, "timings": {"total_s": 1.25},
              "numpy_scalar": np.float64(0.5)},
    )


def _assert_same(a: Trace, b: Trace):
    assert a.method == b.method and a.body == b.body and a.meta == b.meta
    for x, y in ((a.crop, b.crop), (a.faces, b.faces), (a.target_keypoints, b.target_keypoints)):
        assert (x is None and y is None) or (x.dtype == y.dtype and np.array_equal(x, y))
    assert a.camera.keys() == b.camera.keys()
    for k in a.camera:
        assert a.camera[k].dtype == b.camera[k].dtype and np.array_equal(a.camera[k], b.camera[k])
    assert len(a) == len(b)
    for s, t in zip(a.steps, b.steps):
        assert s.label == t.label and s.losses == t.losses and s.meta == t.meta
        for d1, d2 in ((s.params, t.params), (s.maps, t.maps)):
            assert list(d1) == list(d2)
            for k in d1:
                assert d1[k].dtype == d2[k].dtype and np.array_equal(d1[k], d2[k])
        for x, y in ((s.vertices, t.vertices), (s.joints2d, t.joints2d)):
            assert (x is None and y is None) or np.array_equal(x, y)


@pytest.mark.parametrize("compress", [True, False])
def test_roundtrip_file_and_bytes(tmp_path, compress):
    tr = _make_trace()
    path = tmp_path / "run.npz"
    tr.save(path, compress=compress)
    back = Trace.load(path)
    _assert_same(tr, back)
    _assert_same(tr, Trace.from_bytes(tr.to_bytes(compress=compress)))
    assert back.meta["numpy_scalar"] == 0.5 and back.meta["checkpoint"] is None


def test_storage_layout_is_plain_npz_float32(tmp_path):
    tr = _make_trace()
    tr.save(tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        keys = set(z.files)
        assert {"crop", "faces", "target_keypoints", "camera/focal", "step000/params/betas",
                "step000/vertices", "step000/joints2d", "step003/maps/iuv", "__trace__"} <= keys
        assert "step001/joints2d" not in keys
        assert z["step000/params/betas"].dtype == np.float32
        assert z["step000/params/cam"].dtype == np.float32  # torch float64 in, float32 stored
        assert z["step003/maps/iuv"].dtype == np.uint8 and z["step003/maps/visible"].dtype == bool
        assert z["faces"].dtype.kind == "i"
        header = json.loads(str(z["__trace__"][()]))
        assert header["version"] == TRACE_VERSION and header["method"] == "smplify"
        assert [s["label"] for s in header["steps"]] == tr.step_labels
    # the archive has no pickled member
    with zipfile.ZipFile(tmp_path / "t.npz") as zf:
        for name in zf.namelist():
            with zf.open(name) as member:
                assert member.read(6) == b"\x93NUMPY"


def test_helpers():
    tr = _make_trace(4)
    assert len(tr) == 4 and tr.final is tr.steps[-1]
    assert tr.step_labels == [f"SMPLify body {i}/4" for i in range(4)]
    curves = tr.loss_curves()
    assert list(curves) == ["reprojection", "pose_prior"]
    np.testing.assert_allclose(curves["reprojection"], [100, 50, 100 / 3, 25])
    assert np.isnan(curves["pose_prior"][0]) and curves["pose_prior"][3] == 3.0
    with pytest.raises(ValueError, match="no steps"):
        Trace("x").final
    empty = Trace.from_bytes(Trace("empty").to_bytes())
    assert len(empty) == 0 and empty.crop is None and empty.loss_curves() == {}


def test_many_steps_keep_order():
    tr = Trace("tto", steps=[Step(f"TTO {i}", losses={"l": float(i)}) for i in range(1234)])
    back = Trace.from_bytes(tr.to_bytes(compress=False))
    assert back.step_labels == tr.step_labels
    np.testing.assert_array_equal(back.loss_curves()["l"], np.arange(1234))


def test_rejects_non_traces(tmp_path):
    plain = tmp_path / "random.npz"
    np.savez(plain, a=np.arange(3), b=np.eye(2))
    with pytest.raises(TraceFormatError, match="not an HMR Studio trace"):
        Trace.load(plain)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file at all")
    with pytest.raises(TraceFormatError):
        Trace.load(garbage)
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TraceFormatError):
        Trace.from_bytes(pickled.getvalue())


def _rewrite_header(data: bytes, **changes) -> bytes:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays["__trace__"][()]))
    header.update(changes)
    arrays["__trace__"] = np.array(json.dumps(header))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_rejects_newer_version_and_corrupt_header():
    data = _make_trace(2).to_bytes()
    with pytest.raises(TraceFormatError, match="newer"):
        Trace.from_bytes(_rewrite_header(data, version=TRACE_VERSION + 1))
    with pytest.raises(TraceFormatError, match="format"):
        Trace.from_bytes(_rewrite_header(data, format="something-else"))
    with pytest.raises(TraceFormatError, match="missing"):
        Trace.from_bytes(_rewrite_header(data, camera=["focal", "nonexistent"]))


def test_validation_errors_are_clear():
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        Step("bad", vertices=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="confidence column"):
        Step("bad", joints2d=np.zeros((49, 3)))
    with pytest.raises(ValueError, match="uint8"):
        Trace("m", crop=np.zeros((224, 224, 3), np.float32))
    with pytest.raises(TypeError, match="object array"):
        Step("bad", params={"x": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(TypeError, match="body"):
        Trace("m", None, {}, [], np.zeros(3))
    tr = Trace("m", meta={"fine": 1, "model": object()})
    with pytest.raises(TypeError, match="'model'"):
        tr.to_bytes()


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    old = _make_trace(2)
    old.save(path)
    before = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"PK\x03\x04partial garbage")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(np, "savez_compressed", crash)
    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        _make_trace(3).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["run.npz"]
    _assert_same(old, Trace.load(path))


# ====================================================================== core.methods registry
@pytest.fixture
def registry(monkeypatch):
    """An empty registry with no built-in modules (other modules are not imported)."""
    monkeypatch.setattr(M, "_REGISTRY", {})
    monkeypatch.setattr(M, "_FAILED_MODULES", {})
    monkeypatch.setattr(M, "_BUILTINS_LOADED", False)
    monkeypatch.setattr(M, "BUILTIN_METHOD_MODULES", {})
    return M


class DummyMethod:
    def __init__(self, n_steps=3, offset=0.0):
        self.n_steps, self.offset = n_steps, offset

    def run(self, inputs, progress=None):
        trace = Trace("dummy", inputs.crop, {"focal": 5000.0})
        for i in range(self.n_steps):
            if progress is not None:
                progress(i / self.n_steps, f"step {i}")
            trace.steps.append(Step(f"step {i}", losses={"loss": self.offset + 1.0 / (i + 1)}))
        return trace


def _inputs(with_kp=True):
    img = np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    kp = np.concatenate([np.random.default_rng(1).uniform(20, 100, size=(49, 2)), np.ones((49, 1))], 1)
    return M.MethodInputs.from_image(img, [80.0, 60.0], 0.5, keypoints_full=kp if with_kp else None)


def test_register_create_and_run(registry):
    @registry.register_method("dummy", description="a test method", family="test", needs=("keypoints",))
    def build_dummy(**config):
        return DummyMethod(**config)

    assert build_dummy.__name__ == "build_dummy"  # decorator returns the builder unchanged
    registry.register_method("dummy2", builder=DummyMethod, description="second", family="other")
    assert registry.available_methods() == ["dummy", "dummy2"]
    assert registry.available_methods(family="test") == ["dummy"]
    info = registry.method_info("dummy")
    assert info.description == "a test method" and info.needs == ("keypoints",) and info.available
    assert info.module == __name__

    method = registry.create_method("dummy", n_steps=5, offset=2.0)
    assert isinstance(method, registry.Method)
    calls = []
    trace = method.run(_inputs(), progress=lambda f, msg: calls.append((f, msg)))
    assert len(trace) == 5 and trace.final.losses["loss"] == pytest.approx(2.2)
    assert calls[0] == (0.0, "step 0") and len(calls) == 5
    assert len(registry.run_method("dummy2", _inputs(with_kp=False), n_steps=2)) == 2


def test_registry_errors(registry):
    registry.register_method("dummy", builder=DummyMethod, description="d", family="test",
                             needs=("keypoints",))
    with pytest.raises(KeyError, match="unknown method 'nope'; available: dummy"):
        registry.method_info("nope")
    with pytest.raises(KeyError, match="available: dummy"):
        registry.create_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_method("dummy", builder=DummyMethod, description="d", family="test")
    registry.register_method("dummy", builder=DummyMethod, description="new", family="test", overwrite=True)
    assert registry.method_info("dummy").description == "new"
    with pytest.raises(ValueError, match="lowercase"):
        registry.register_method("Bad Name", builder=DummyMethod, description="d", family="test")
    with pytest.raises(TypeError, match="tuple"):
        registry.register_method("x", builder=DummyMethod, description="d", family="t", needs="keypoints")
    registry.register_method("norun", builder=lambda: object(), description="d", family="test")
    with pytest.raises(TypeError, match="no run"):
        registry.create_method("norun")
    registry.unregister_method("norun")
    assert "norun" not in registry.available_methods()


def test_needs_are_checked(registry):
    registry.register_method("kp", builder=DummyMethod, description="d", family="t", needs=("keypoints", "smpl"))
    no_kp = _inputs(with_kp=False)
    assert registry.missing_needs("kp", no_kp) == ["keypoints"]
    assert registry.missing_needs("kp", _inputs()) == []
    with pytest.raises(ValueError, match="needs keypoints"):
        registry.run_method("kp", no_kp)


def test_builtin_loading_records_failures(registry, tmp_path, monkeypatch):
    pkg = tmp_path / "fake_methods_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "good.py").write_text(
        "from core.methods import register_method\n"
        "class Good:\n"
        "    def run(self, inputs, progress=None):\n"
        "        raise NotImplementedError\n"
        "register_method('good', builder=Good, description='loads fine', family='test')\n")
    (pkg / "broken.py").write_text("import numpy\nraise ImportError('needs the foo extra: pip install foo')\n")
    (pkg / "needs_dep.py").write_text("import a_dependency_that_is_not_installed_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(M, "BUILTIN_METHOD_MODULES", {
        "fake_methods_pkg.good": ("good",),
        "fake_methods_pkg.broken": ("broken_method",),
        "fake_methods_pkg.needs_dep": (),
        "fake_methods_pkg.not_written_yet": ("future",),
    })
    try:
        assert registry.available_methods() == ["good"]
        assert registry.available_methods(include_unavailable=True) == ["broken_method", "good"]
        info = registry.method_info("broken_method")
        assert not info.available and "needs the foo extra" in info.error
        with pytest.raises(M.MethodUnavailableError, match="needs the foo extra"):
            registry.create_method("broken_method")
        failed = registry.failed_method_modules()
        assert set(failed) == {"fake_methods_pkg.broken", "fake_methods_pkg.needs_dep"}
        assert "a_dependency_that_is_not_installed_xyz" in failed["fake_methods_pkg.needs_dep"]
        with pytest.raises(KeyError, match="needs_dep"):  # unknown names explain failed modules
            registry.method_info("future")
    finally:
        for name in [m for m in sys.modules if m.startswith("fake_methods_pkg")]:
            del sys.modules[name]


def test_method_inputs_validation_and_from_image():
    inp = _inputs()
    assert inp.crop.shape == (224, 224, 3) and inp.crop.dtype == np.uint8
    np.testing.assert_allclose(inp.keypoints[:, :2], points_to_crop(inp.keypoints_full[:, :2], [80.0, 60.0], 0.5))
    np.testing.assert_array_equal(inp.keypoints[:, 2], 1.0)
    with pytest.raises(ValueError, match=r"\(49, 3\)"):
        M.MethodInputs(inp.image, inp.crop, inp.center, inp.scale, keypoints=np.zeros((17, 3)))
    with pytest.raises(ValueError, match="uint8"):
        M.MethodInputs(inp.image.astype(np.float32), inp.crop, inp.center, inp.scale)
    with pytest.raises(ValueError, match="scale"):
        M.MethodInputs(inp.image, inp.crop, inp.center, 0.0)


# ----------------------------------------------------------------------------- upload limits
def _bomb_trace(path, n_steps=1, repeat_key=False, crop_shape=(8000, 8000, 3), step_array=None):
    """A trace archive written member by member: a crop of zeros declared (and stored) at
    ``crop_shape`` (deflate makes it tiny), and steps whose vertices are ``step_array``."""
    header = {"format": "hmr-studio-trace", "version": TRACE_VERSION, "method": "evil", "body": "open", "meta": {},
              "camera": [], "crop": True, "faces": False, "target_keypoints": False, "steps": []}
    for i in range(n_steps):
        key = "step000" if repeat_key else f"step{i:03d}"
        header["steps"].append({"key": key, "label": str(i), "params": [], "maps": [], "losses": {}, "meta": {},
                                "vertices": step_array is not None, "joints2d": False})

    def member(zf, name, shape, dtype, chunk=1 << 24):
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                     "shape": shape})
            left = int(np.prod(shape)) * np.dtype(dtype).itemsize
            zeros = bytes(min(chunk, left))
            while left:
                f.write(zeros[:min(chunk, left)])
                left -= min(chunk, left)

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        buf = io.BytesIO()
        np.save(buf, np.array(json.dumps(header)))
        zf.writestr("__trace__.npy", buf.getvalue())
        member(zf, "crop", crop_shape, np.uint8)
        if step_array is not None:
            for i in range(1 if repeat_key else n_steps):
                member(zf, f"step{i:03d}/vertices", step_array, np.float32)
    return path


def test_a_decompression_bomb_crop_is_refused_before_allocation(tmp_path):
    """8000×8000×3 zeros compress to ≈190 KB; the declared size is refused from the zip and
    .npy headers, under a 1 GB address-space cap, without memory growth."""
    path = _bomb_trace(tmp_path / "bomb.npz")
    assert path.stat().st_size < 1_000_000
    res = run_capped("from core.trace import Trace", f"Trace.load({str(path)!r})", cap_mb=1024)
    assert res["error"].startswith("TraceFormatError") and "limit" in res["error"], res
    assert res["peak_mb"] < 50, res
    ok = _bomb_trace(tmp_path / "ok.npz", crop_shape=(224, 224, 3))
    assert Trace.load(ok).crop.shape == (224, 224, 3)


def test_steps_that_repeat_one_array_are_refused(tmp_path):
    """The header lists one step (150,000 vertices) 15 times: refused at the first repeat
    (each array is read at most once anyway), and memory stays bounded."""
    path = _bomb_trace(tmp_path / "rep.npz", n_steps=15, repeat_key=True, crop_shape=(224, 224, 3),
                       step_array=(150_000, 3))
    res = run_capped("from core.trace import Trace", f"Trace.load({str(path)!r})", cap_mb=1024)
    assert res["error"].startswith("TraceFormatError") and "repeated" in res["error"], res
    assert res["peak_mb"] < 100, res


def test_too_many_steps_and_too_many_vertices_are_refused(tmp_path):
    path = _bomb_trace(tmp_path / "many.npz", n_steps=6000, crop_shape=(8, 8, 3))
    with pytest.raises(TraceFormatError, match="6000 steps; at most 5000"):
        Trace.load(path)
    path = _bomb_trace(tmp_path / "verts.npz", n_steps=1, crop_shape=(8, 8, 3), step_array=(300_000, 3))
    with pytest.raises(TraceFormatError, match=r"shape \(300000, 3\); at most 200000×3"):
        Trace.load(path)


def test_faces_beyond_the_vertices_are_a_clear_error(tmp_path):
    t = _make_trace(2)
    t.faces = np.array([[0, 1, 60]])   # the steps have 50 vertices
    t.save(tmp_path / "t.npz")
    with pytest.raises(TraceFormatError, match="vertex indices 0..60 but step .* has 50 vertices"):
        Trace.load(tmp_path / "t.npz")
