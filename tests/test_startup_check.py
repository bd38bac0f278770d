"""Start-up validation of the files named on the command line (issue 13, item 4)."""
import pytest
import torch

from core.body import load_body
from core.models import create_model, save_checkpoint
from studio.config import StudioConfig
from studio.pipeline import check_files, method_choices


def _main(argv, capsys):
    import studio.__main__ as cli

    rc = cli.main(argv)
    return rc, capsys.readouterr().err


def test_a_corrupt_checkpoint_stops_the_studio_with_one_message(tmp_path, capsys):
    bad = tmp_path / "PyMAF_model_checkpoint.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint" * 40)
    rc, err = _main(["--checkpoint", f"pymaf={bad}"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert err.startswith(f"error: --checkpoint pymaf={bad}:")
    assert "expected: PyMAF_model_checkpoint.pt from PyMAF" in err and "to do:" in err and "--smpl-dir" in err


def test_a_checkpoint_of_another_network_says_what_it_is(tmp_path, capsys):
    path = tmp_path / "model_checkpoint.pt"
    torch.save({"model": create_model("hmr", body=load_body("open")).state_dict()}, path)
    rc, err = _main(["--checkpoint", f"pymaf={path}"], capsys)
    assert rc == 2
    assert "looks like a SPIN/HMR regressor checkpoint" in err
    assert len(err.splitlines()) < 15, "a key dump reached the user"


def test_a_smpl_folder_without_the_model_file_is_refused(tmp_path, capsys):
    rc, err = _main(["--smpl-dir", str(tmp_path)], capsys)
    assert rc == 2 and "SMPL_NEUTRAL.pkl" in err and "to do:" in err


def test_good_files_pass_the_check(tmp_path):
    from tests.helpers.fake_smpl import write_fake_smpl_dir

    model = create_model("hmr_resnet18", body=load_body("open"))
    path = tmp_path / "hmr.safetensors"
    save_checkpoint(model, path)
    config = StudioConfig(checkpoints={"hmr": path})
    runner = check_files(config)
    built = runner._get("hmr", runner.builder_kwargs("hmr"))[0]
    assert len(runner._methods) == 1        # built once, at the check …
    pytest.importorskip("gradio")
    from studio.app import StudioApp

    app = StudioApp(config, runner)         # … and the studio runs that one (the checkpoint is not loaded twice)
    assert app.runner._get("hmr", app.runner.builder_kwargs("hmr"))[0] is built
    check_files(StudioConfig(smpl_dir=write_fake_smpl_dir(tmp_path / "smpl")))


def test_untrained_methods_say_which_file_and_flag_they_need():
    choices = {c.name: c for c in method_choices(StudioConfig())}
    cliff = choices["cliff"]
    assert cliff.untrained
    assert "--checkpoint cliff=PATH" in cliff.weights and "CLIFF" in cliff.weights and "--smpl-dir" in cliff.weights


def test_the_method_note_of_an_untrained_method_names_the_flag():
    from studio.app import method_note

    choice = {c.name: c for c in method_choices(StudioConfig())}["cliff"]
    note = method_note(choice)
    assert "Untrained weights" in note and "--checkpoint&nbsp;cliff=PATH" in note and "hr48\u2011*.pt or res50\u2011*.pt" in note


def test_smplify_schedule_is_described_stage_by_stage():
    from core.fitting.smplify import describe_schedule

    assert describe_schedule("spin", 50).endswith("camera 50 · body 50 — 100 iterations in all")
    text = describe_schedule("smplify", 120)
    assert "camera 20 · body-1 20 · body-2 20 · body-3 20 · body-4 120 — 200 iterations in all" in text


def test_the_smplify_controls_reach_the_method_and_its_trace(tmp_path):
    """The UI's schedule and camera-torso choices are passed to SMPLify, and only to the
    methods that take them (EFT's builder takes **config and would refuse them)."""
    pytest.importorskip("gradio")
    from PIL import Image
    from skimage import data

    from studio.app import StudioApp

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(photo)
    app = StudioApp(StudioConfig(methods=["smplify", "eft"], default_iterations=10, preview_iterations=0))
    session = app.on_image(str(photo), None, None)[0]
    try:
        session, note = app.on_fit_options("smplify", "spin", "direct", 10, session)
        assert "SPIN: camera stage" in note and "camera 10 · body 10" in note
        trace = app.run("smplify", session, 10)
        assert trace.meta["schedule"] == "spin" and trace.meta["camera_gt_torso_first"] is False
        assert trace.meta["stages"] == "camera:10,body:10"
        eft = app.run("eft", session)
        assert eft.steps
    finally:
        session.close()


def test_method_labels_say_where_weights_come_from(tmp_path):
    from core.models import create_model, save_checkpoint

    path = tmp_path / "hmr.safetensors"
    save_checkpoint(create_model("hmr_resnet18", body=load_body("open")), path)
    choices = {c.name: c for c in method_choices(StudioConfig(checkpoints={"hmr": path, "eft": path}))}
    assert choices["hmr"].label.endswith("— your checkpoint")
    assert choices["eft"].label.endswith("— starts from your checkpoint")
    assert "weights" not in choices["smplify"].label and "starts from" not in choices["smplify"].label


def test_the_method_picker_shows_each_smplify_option_where_it_applies():
    pytest.importorskip("gradio")
    from studio.app import StudioApp

    app = StudioApp(StudioConfig(methods=["smplify", "spin", "hmr"]))
    note, iters, row, sched, sched_note = app.on_method("smplify", "smplify", 60)
    assert row["visible"] and sched["visible"] and "body-4 60" in sched_note["value"]
    note, iters, row, sched, sched_note = app.on_method("spin", "smplify", 60)
    assert row["visible"] and not sched["visible"] and "camera 60 · body 60" in sched_note["value"]
    note, iters, row, sched, sched_note = app.on_method("hmr", "smplify", 60)
    assert not row["visible"] and not sched_note["visible"]
