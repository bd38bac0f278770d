"""The web studio built with ``build_app`` and its handlers called in-process (no browser):
photo → people → run → slider → exports → trace reopen, bad inputs, compare, the CLI."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.trace import Trace
from studio.app import StudioApp, build_app, step_info_markdown, trace_badge
from studio.config import StudioConfig, parse_checkpoint_args
from studio.pipeline import method_choices
from studio.session import StudioSession
from tests.test_studio_support import (
    TEST_METHOD,
    astronaut_bytes,
    body_trace,
    register_test_method,
    unregister_test_method,
)

pytest.importorskip("gradio")


@pytest.fixture(scope="module", autouse=True)
def test_method():
    register_test_method()
    yield
    unregister_test_method()


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> StudioApp:
    cfg = StudioConfig(methods=[TEST_METHOD], examples_dir=tmp_path_factory.mktemp("examples"),
                       default_iterations=6, preview_iterations=2)
    return StudioApp(cfg)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("photos")
    out = {}
    from skimage import data

    a = data.astronaut()
    for name, arr in {"one": a, "two": np.concatenate([a, a[:, ::-1]], 1),
                      "nobody": np.full((400, 400, 3), 128, np.uint8)}.items():
        p = d / f"{name}.jpg"
        Image.fromarray(arr).save(p, quality=90)
        out[name] = p
    (d / "text.jpg").write_bytes(b"not a photo at all")
    out["text"] = d / "text.jpg"
    (d / "empty.png").write_bytes(b"")
    out["empty"] = d / "empty.png"
    full = astronaut_bytes()
    (d / "cut.jpg").write_bytes(full[: len(full) // 3])
    out["truncated"] = d / "cut.jpg"
    Image.new("RGB", (1, 1)).save(d / "dot.png")
    out["1px"] = d / "dot.png"
    return out


def _run_to_end(studio, session, name=TEST_METHOD, iters=6):
    outs = list(studio.on_run(name, iters, True, session))
    return outs


@pytest.fixture(scope="module")
def ran(studio, photos):
    """A session with the test method run on the astronaut."""
    out = studio.on_image(str(photos["one"]), None, None)
    session = out[0]
    outs = _run_to_end(studio, session)
    yield session, outs
    session.close()


# ----------------------------------------------------------------------------- building
def test_build_app_wires_the_studio(studio):
    import gradio as gr

    demo = build_app(studio=studio)
    assert isinstance(demo, gr.Blocks) and demo.studio is studio
    cfg = demo.get_config_file() if hasattr(demo, "get_config_file") else demo.config
    text = json.dumps(cfg, default=str)
    for elem in ("run-button", "step-slider", "model3d", "download-glb", "photo-upload"):
        assert elem in text
    assert "reconstruct" in text


def test_method_choices_label_untrained_and_iterative():
    choices = {c.name: c for c in method_choices(StudioConfig())}
    if "smplify" in choices:
        assert choices["smplify"].iterative and not choices["smplify"].untrained and choices["smplify"].runnable
    from core.methods import default_weights

    for name in ("hmr", "pymaf", "cliff", "eft", "meta-hmr"):
        if name in choices and choices[name].runnable:
            shipped = default_weights(name)
            assert choices[name].untrained == (shipped is None)
            assert ("untrained" in choices[name].label) == (shipped is None)
            if shipped:
                assert choices[name].weights == shipped
            else:   # says which file and flag would give trained weights
                assert choices[name].weights.startswith("untrained (no checkpoint given to this server); for "
                                                        f"trained weights start the studio with --checkpoint {name}=")
            if shipped:
                assert "trained on synthetic data" in choices[name].label
            if choices[name].family == "optimisation":    # a TTO method says what it starts from
                assert "starts from" in choices[name].label
    with pytest.raises(ValueError, match="unknown method"):
        method_choices(StudioConfig(methods=["no_such_method"]))


# ----------------------------------------------------------------------------- photo → people
def test_one_person(studio, photos):
    session, people, status, dd, crop = studio.on_image(str(photos["one"]), None, None)
    assert "Found 1 person" in status and dd["visible"] is False
    assert crop.shape == (224, 224, 3) and people.ndim == 3
    assert session.inputs is not None and (session.inputs.keypoints[:, 2] > 0).sum() >= 8


def test_several_people_and_the_picker(studio, photos):
    session, people, status, dd, crop = studio.on_image(str(photos["two"]), None, None)
    assert "Found 2 people" in status and dd["visible"] is True and len(dd["choices"]) == 2
    c0 = session.inputs.center.copy()
    session, people2, crop2, status2 = studio.on_person(1, session)
    assert session.person == 1 and abs(session.inputs.center[0] - c0[0]) > 300
    assert not np.array_equal(crop, crop2)


@pytest.mark.parametrize("key, words", [
    ("text", "not an image"), ("empty", "empty"), ("truncated", "truncated"), ("1px", "only 1×1"),
])
def test_bad_files_give_a_message_not_an_exception(studio, photos, key, words):
    session, people, status, dd, crop = studio.on_image(str(photos[key]), None, None)
    assert words in status and "studio-err" in status
    assert people is None and crop is None and session.inputs is None
    # and the session still works afterwards
    session, *_ , crop = studio.on_image(str(photos["one"]), None, session)
    assert crop is not None


def test_no_person(studio, photos):
    session, people, status, dd, crop = studio.on_image(str(photos["nobody"]), None, None)
    assert "No person" in status and crop is None and session.inputs is None
    outs = list(studio.on_run(TEST_METHOD, 6, True, session))
    assert "Upload a photo with a person first" in outs[-1][1]


def test_webcam_arrays_work_too(studio):
    from skimage import data

    session, people, status, dd, crop = studio.on_image(data.astronaut(), None, None)
    assert "Found 1 person" in status


def test_openpose_json(studio, photos, tmp_path):
    session, *_ = studio.on_image(str(photos["one"]), None, None)
    b25 = session.detection.people[0].body25
    good = tmp_path / "kp.json"
    good.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": b25.reshape(-1).tolist()}]}))
    session, people, status, dd, crop = studio.on_openpose(str(good), session)
    assert "openpose" in status and crop is not None
    np.testing.assert_allclose(session.detection.people[0].body25, b25, atol=1e-6)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    session, people, status, dd, crop = studio.on_openpose(str(bad), session)
    assert "not valid JSON" in status and crop is None


# ----------------------------------------------------------------------------- run and inspect
def test_run_yields_preview_then_result(ran):
    session, outs = ran
    assert len(outs) == 2  # preview (2 iterations) then the full run
    preview, final = outs
    assert "preview" in preview[1] and Path(preview[4]).is_file()
    assert "Done" in final[1]
    badge, slider, overlay, side, kp, info, glb, dl_glb, dl_obj, dl_params, dl_trace, sel = final[2:]
    n = len(session.traces[TEST_METHOD].steps)
    assert slider["maximum"] == n - 1 and slider["value"] == n - 1
    for p in (overlay, side, kp, glb, dl_obj["value"], dl_params["value"], dl_trace["value"]):
        assert Path(p).is_file(), p
    assert f"Step {n - 1} of {n - 1}" in info and "keypoints_2d_px" in info
    assert "studio-ok" in badge


def test_slider_steps_are_served_from_the_cache_fast(ran, studio):
    session, _ = ran
    views = session.current_views
    views.prerender()
    assert views.rendered_count == len(views)
    times = []
    for i in range(len(views)):
        t0 = time.perf_counter()
        overlay, side, kp, info = studio.on_step(i, session)
        times.append(time.perf_counter() - t0)
        assert f"Step {i} " in info and Path(overlay).is_file()
    assert max(times) < 0.15, times  # the ≤150 ms target per slider step


def test_slider_release_exports_and_maps(ran, studio):
    import trimesh

    session, _ = ran
    model, glb, obj, params, maps = studio.on_step_details(1, True, session)
    assert model.endswith("_photo.glb") and Path(model).is_file()
    scene = trimesh.load(model)
    assert "photo" in scene.geometry
    model2, *_ = studio.on_step_details(1, False, session)
    assert "photo" not in trimesh.load(model2, force="scene").geometry
    data = np.load(params["value"], allow_pickle=False)
    assert "vertices" in data and str(data["label"]).startswith("translation fit")
    assert Path(obj["value"]).read_text().startswith("# HMR Studio mesh export")


def test_after_run_strip_plot_maps(ran, studio):
    session, _ = ran
    strip, fig, maps = studio.after_run(session)
    n = len(session.traces[TEST_METHOD].steps)
    assert len(strip) == n and all(Path(p).is_file() for p, _ in strip)
    assert fig.axes and maps == []


def test_trace_download_reopens(ran, studio):
    session, outs = ran
    trace_path = outs[-1][12]["value"]
    fresh = StudioSession()
    try:
        res = studio.on_trace_upload(trace_path, fresh)
        assert "Opened" in res[1] and len(res) == 15
        reopened = fresh.traces[next(iter(fresh.traces))]
        orig = session.traces[TEST_METHOD]
        assert reopened.step_labels == orig.step_labels
        np.testing.assert_allclose(reopened.final.vertices, orig.final.vertices)
        assert res[-1].shape == (224, 224, 3)
    finally:
        fresh.close()


def test_bad_trace_uploads(studio, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 nonsense")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, __trace__=np.array([{"evil": 1}], dtype=object))
    for p in (junk, empty, pickled):
        res = StudioApp(studio.config).on_trace_upload(str(p), StudioSession())
        assert "not a readable HMR Studio trace" in res[1], res[1]


def test_uploaded_trace_with_maps_shows_maps(studio):
    tr = body_trace()
    session = StudioSession()
    try:
        session.add_trace("upload: body", tr, background=False)
        strip, fig, maps = studio.after_run(session)
        assert len(maps) >= 5 and any("IUV" in c for _, c in maps)
    finally:
        session.close()


def test_compare_runs_every_offered_method(studio, photos):
    session, *_ = studio.on_image(str(photos["one"]), None, None)
    session, status, gallery, table, glb = studio.on_compare(True, session)
    assert "Compared 1 runs" in status and len(gallery) == 1 and TEST_METHOD in table
    assert Path(glb).is_file()
    assert "rgb(92,140,237)" in table          # the legend: the method's colour in the 3D view


def test_compare_leaves_failed_runs_out_of_the_3d_view(studio, photos):
    """A failed result (e.g. a mesh behind the camera) is listed as failed and not drawn in
    the 3D view, where it would only dwarf the others."""
    from core.quality import QualityVerdict

    session, *_ = studio.on_image(str(photos["one"]), None, None)
    try:
        good, bad = body_trace(), body_trace()
        bad.meta["quality"] = QualityVerdict("failed", ("the mesh is behind the camera",), None).to_meta()
        session.add_trace("good", good, background=False)
        session.add_trace("bad", bad, background=False)
        glb, colours = session.compare_glb(["good", "bad"], skip=["bad"])
        assert list(colours) == ["good"] and Path(glb).is_file()
        session.inputs = None                   # compare what is there, run nothing
        session, status, gallery, table, glb = studio.on_compare(True, session)
        assert "Not in the 3D view (their result failed): bad" in status
        row = next(line for line in table.splitlines() if "| bad |" in line)
        assert row.startswith("| — |") and "| failed |" in row
    finally:
        session.close()


def test_unknown_or_unavailable_method_is_reported(studio, ran):
    session, _ = ran
    out = list(studio.on_run("no_such_method", 6, True, session))
    assert "studio-err" in out[-1][1]


def test_step_info_and_badges():
    tr = body_trace()
    md = step_info_markdown(tr, 0)
    assert "Step 0 of 3" in md and "| keypoints_2d_px |" in md and "iteration: 0" in md
    tr.meta = {"weights_trained": False, "warning": "untrained weights: x"}
    assert "studio-warn" in trace_badge(tr) and "untrained" in trace_badge(tr)


def test_a_trace_method_name_is_escaped_in_the_status(tmp_path):
    """A method name is file content: it must not reach the page as HTML."""
    p = tmp_path / "t.npz"
    tr = body_trace()
    tr.method = "<img src=x onerror=alert(1)>"
    tr.save(p)
    app = StudioApp(StudioConfig(trace_path=p, methods=[TEST_METHOD], examples_dir=tmp_path))
    res = app.on_load(None)
    assert "<img" not in res[1] and "&lt;img src=x" in res[1]
    res[0].close()


def test_page_load_opens_the_configured_trace(tmp_path):
    p = tmp_path / "t.npz"
    body_trace().save(p)
    app = StudioApp(StudioConfig(trace_path=p, methods=[TEST_METHOD], examples_dir=tmp_path))
    res = app.on_load(None)
    assert "Opened" in res[1] and isinstance(res[0], StudioSession)
    res[0].close()


def _api(studio, *args, request=None):
    """The /reconstruct generator run to its end: its last output."""
    *_, last = studio.api_reconstruct(*args, request=request)
    return last


def test_api_reconstruct(studio, photos):
    overlay, trace_file, summary = _api(studio, str(photos["one"]), TEST_METHOD, 3)
    assert summary["method"] == TEST_METHOD and summary["steps"] == 4 and Path(overlay).is_file()
    assert Trace.load(trace_file).final.losses["keypoints_2d_px"] < 100
    assert summary["quality"]["level"] in ("good", "doubtful", "failed")
    _, _, summary = _api(studio, str(photos["text"]), TEST_METHOD, 3)
    assert "not an image" in summary["error"]
    # the API takes the UI's iteration range, checked before anything runs
    for bad in (10 ** 9, 0, -5, 2.5, "many"):
        _, _, summary = _api(studio, str(photos["one"]), TEST_METHOD, bad)
        assert "iterations must be" in summary["error"], bad


def test_api_work_stops_when_the_client_goes_away(tmp_path, photos, monkeypatch):
    """Gradio closes the endpoint's generator when the client disconnects; the job's next
    progress call then stops the run (here a run that would take 20 s stops within 1 s)."""
    import types

    app = StudioApp(StudioConfig(methods=[TEST_METHOD], examples_dir=tmp_path))
    steps = []

    def slow_run(name, session, iterations, progress=None, preview=False):
        for k in range(200):
            steps.append(k)
            progress(k / 200, f"step {k}")
            time.sleep(0.1)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(app, "run", slow_run)
    gen = app.api_reconstruct(str(photos["one"]), TEST_METHOD, 200,
                              request=types.SimpleNamespace(client=types.SimpleNamespace(host="1.2.3.4")))
    assert next(gen)[2] == {"status": "running"}   # a status line every second while it works
    gen.close()                                     # what Gradio does when the client is gone
    t0 = time.monotonic()
    while len(steps) and time.monotonic() - t0 < 3:
        n = len(steps)
        time.sleep(0.3)
        if len(steps) == n:
            break
    assert len(steps) < 40, len(steps)


def test_api_requests_are_fair_between_callers_and_capped_per_caller(tmp_path, photos, monkeypatch):
    import threading
    import types

    app = StudioApp(StudioConfig(methods=[TEST_METHOD], examples_dir=tmp_path, api_workers=1, api_max_pending=2))
    order, gate = [], threading.Event()

    def fake_job(image_path, method, iterations, cancel):
        gate.wait(5)
        order.append(method)
        return None, None, {"method": method}

    monkeypatch.setattr(app, "_api_job", fake_job)

    def req(host):
        return types.SimpleNamespace(client=types.SimpleNamespace(host=host))

    gens = [app.api_reconstruct(str(photos["one"]), f"a{k}", None, request=req("10.0.0.1")) for k in range(3)]
    first = [next(g) for g in gens]                  # a0 runs (held by the gate), a1 and a2 wait
    assert first[0][2] == {"status": "running"} and first[1][2] == {"status": "queued"}
    over = next(app.api_reconstruct(str(photos["one"]), "a3", None, request=req("10.0.0.1")))
    assert "Too many requests from 10.0.0.1" in over[2]["error"]   # a fourth: 2 already waiting
    b = app.api_reconstruct(str(photos["one"]), "b0", None, request=req("10.0.0.2"))
    next(b)
    gate.set()
    results = [list(g)[-1][2]["method"] for g in gens + [b]]
    assert results == ["a0", "a1", "a2", "b0"]
    assert order == ["a0", "b0", "a1", "a2"], order  # the other caller goes next, not after all of a's


def test_session_close_removes_files(studio, photos):
    session, *_ = studio.on_image(str(photos["one"]), None, None)
    list(studio.on_run(TEST_METHOD, 3, True, session))
    folder = session.folder
    assert any(folder.rglob("*.jpg"))
    session.close()
    assert not folder.exists()


# ----------------------------------------------------------------------------- CLI
def test_cli_help_lists_every_option(capsys):
    from studio.__main__ import build_parser

    text = build_parser().format_help()
    for opt in ("--smpl-dir", "--checkpoint", "--port", "--host", "--share", "--desktop", "--trace", "--methods"):
        assert opt in text


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    from studio.__main__ import main

    assert main(["--smpl-dir", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["--checkpoint", "pymaf"]) == 2
    assert main(["--checkpoint", f"pymaf={tmp_path / 'no.pt'}"]) == 2
    assert main(["--methods", "nope"]) == 2
    with pytest.raises(ValueError, match="twice"):
        parse_checkpoint_args(["a=b", "a=c"])
    assert parse_checkpoint_args(["pymaf=~/x.pt"])["pymaf"].name == "x.pt"


def test_runner_passes_operator_resources(tmp_path):
    from studio.pipeline import MethodRunner

    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"x")
    cfg = StudioConfig(smpl_dir=tmp_path, checkpoints={"pymaf": ckpt})
    kw = MethodRunner(cfg).builder_kwargs("pymaf")
    assert kw == {"smpl_dir": str(tmp_path), "checkpoint": str(ckpt)}
    kw = MethodRunner(StudioConfig()).builder_kwargs("smplify", num_iters=7, record_every=None, unknown_option=1)
    assert kw == {"num_iters": 7, "record_every": None}
    with pytest.raises(ValueError, match="takes no checkpoint"):
        MethodRunner(StudioConfig(checkpoints={"smplify": ckpt})).builder_kwargs("smplify")


@pytest.mark.slow
def test_smplify_through_the_handlers(photos, tmp_path):
    """The real SMPLify (few iterations) from photo to exports."""
    app = StudioApp(StudioConfig(methods=["smplify"], examples_dir=tmp_path, preview_iterations=2))
    session, *_ = app.on_image(str(photos["one"]), None, None)
    outs = list(app.on_run("smplify", 6, True, session))
    assert "Done" in outs[-1][1], outs[-1][1]
    tr = session.traces["smplify"]
    assert tr.final.losses["keypoints_2d_px"] < tr.steps[0].losses["keypoints_2d_px"]
    session.close()


def test_a_trace_bomb_upload_is_a_sentence(tmp_path, studio):
    """An uploaded .npz declaring an 8000×8000×3 crop is refused from its headers."""
    from tests.test_trace import _bomb_trace

    path = _bomb_trace(tmp_path / "bomb.npz")
    res = studio.on_trace_upload(str(path), None)
    assert "studio-err" in res[1] and "is not a readable HMR Studio trace" in res[1] and "limit" in res[1]
    res[0].close()


def test_running_out_of_memory_is_a_sentence(studio, photos, monkeypatch):
    session = studio.on_image(str(photos["one"]), None, None)[0]
    monkeypatch.setattr(studio, "run", lambda *a, **k: (_ for _ in ()).throw(MemoryError(24 << 40)))
    outs = list(studio.on_run(TEST_METHOD, 6, True, session))
    assert "ran out of memory running" in outs[-1][1] and "TiB" not in outs[-1][1]
    session.close()


def test_api_callers_are_told_apart_by_address_or_trusted_proxy_header(tmp_path):
    import types

    def req(host, xff=None):
        return types.SimpleNamespace(client=types.SimpleNamespace(host=host),
                                     headers={"x-forwarded-for": xff} if xff else {})

    direct = StudioApp(StudioConfig(methods=[TEST_METHOD], examples_dir=tmp_path))
    assert direct._caller(req("10.0.0.9", "1.1.1.1")) == "10.0.0.9"     # a header anyone can write: ignored
    assert direct._caller(None) == "local"
    proxied = StudioApp(StudioConfig(methods=[TEST_METHOD], examples_dir=tmp_path, trust_forwarded_for=True))
    assert proxied._caller(req("10.0.0.9", "203.0.113.5, 10.0.0.9")) == "203.0.113.5"
    assert proxied._caller(req("10.0.0.9")) == "10.0.0.9"
