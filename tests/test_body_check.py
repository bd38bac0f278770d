"""``python -m core.body.check``: what a data folder holds and enables (issue 13, item 1)."""
import torch

from core.body.check import check_folder, main
from tests.helpers.fake_smpl import write_fake_smpl_dir


def test_a_repository_root_is_checked_file_by_file(tmp_path, capsys):
    data = write_fake_smpl_dir(tmp_path / "repo" / "data", chumpy=True)
    (data / "gmm_08.pkl").write_bytes(b"garbage, not a pickle")
    from core.body import load_body
    from core.models import create_model

    torch.save({"model": create_model("hmr_resnet18", body=load_body("open")).state_dict()},
               data / "model_checkpoint.pt")
    by_name = {s.name: s for s in check_folder(tmp_path / "repo")}
    assert by_name["SMPL_NEUTRAL.pkl"].state == "found" and "6890 vertices" in by_name["SMPL_NEUTRAL.pkl"].detail
    assert by_name["mesh_downsampling.npz"].state == "found"
    assert by_name["gmm_08.pkl"].state == "unreadable" and by_name["gmm_08.pkl"].detail
    assert by_name["UV_data/UV_Processed.mat"].state == "missing"
    assert "SPIN/HMR regressor" in by_name["model_checkpoint.pt"].detail
    assert main([str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    assert "unreadable gmm_08.pkl" in out and "the SMPL body loads (6890 vertices; PyMAF sampling)" in out


def test_a_folder_without_the_model_says_so_and_fails(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "missing    SMPL_NEUTRAL.pkl [required]" in out and "does not load" in out
    assert main([str(tmp_path / "nope")]) == 2
