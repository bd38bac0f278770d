"""Official-checkpoint loading (legacy format, strict report) and project checkpoints."""
import json
import pickle
from unittest import mock

import pytest
import torch
import torch.serialization

from core.body import load_body
from core.models import (CLIFF, HMR, CheckpointError, CheckpointMismatch, PyMAF, create_model,
                         load_cliff_checkpoint, load_meta_hmr_checkpoint, load_project_checkpoint,
                         load_pymaf_checkpoint, load_spin_checkpoint, read_project_config, save_checkpoint)
from tests.helpers.fake_smpl import write_fake_smpl_dir


def randomised(model, seed=0):
    """Fill every float tensor of a state dict with random values (a stand-in for trained weights)."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if k.endswith("running_var"):
            sd[k] = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(264323)
        elif v.is_floating_point() and not k.split(".")[-1].startswith("init_") and ".smpl." not in k \
                and not k.endswith(("Dmap", "points_grid")):
            sd[k] = v + torch.randn(v.shape, generator=g) * 0.02
    return sd


def save_legacy_cuda(obj, path):
    """torch.save in the legacy (non-zip) format with storages tagged 'cuda:0', as SPIN's
    and PyMAF's released files are."""
    with mock.patch.object(torch.serialization, "location_tag", lambda storage: "cuda:0"):
        torch.save(obj, path, _use_new_zipfile_serialization=False)


def spin_file(sd, path):
    save_legacy_cuda({"batch_idx": 1175, "epoch": 2, "total_step_count": 264323,
                      "dataset_perm": list(range(100)),
                      "optimizer": {"state": {0: {"step": torch.tensor(264323.0), "exp_avg": torch.zeros(3)}},
                                    "param_groups": [{"lr": 3e-5, "weight_decay": 1e-4, "betas": (0.9, 0.999),
                                                      "eps": 1e-8, "amsgrad": False, "params": [0]}]},
                      "model": sd}, path)
    return path


@pytest.fixture(scope="module")
def smpl_body(tmp_path_factory):
    return load_body("smpl", data_dir=write_fake_smpl_dir(tmp_path_factory.mktemp("smpl")))


@pytest.fixture(scope="module")
def spin_checkpoint(tmp_path_factory):
    sd = randomised(HMR(backbone="resnet50"))
    return spin_file(sd, tmp_path_factory.mktemp("ckpt") / "model_checkpoint.pt"), sd


def test_legacy_cuda_checkpoint_needs_map_location(spin_checkpoint):
    path, _ = spin_checkpoint
    assert path.read_bytes()[:2] == b"\x80\x02"  # a protocol-2 pickle, not a zip archive
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=True)


def test_spin_checkpoint_loads_strictly(spin_checkpoint):
    path, sd = spin_checkpoint
    model = HMR()
    assert model.weights_trained is False
    report = load_spin_checkpoint(model, path)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())
    assert model.weights_trained is True
    assert report.entry == "model" and report.num_tensors == 331
    assert report.metadata["batch_idx"] == 1175 and report.metadata["total_step_count"] == 264323


def test_another_architecture_is_named(spin_checkpoint):
    path, _ = spin_checkpoint
    with pytest.raises(CheckpointMismatch) as err:
        load_pymaf_checkpoint(PyMAF(), path)
    text = str(err.value)
    assert "looks like a SPIN/HMR regressor checkpoint, but the model is PyMAF" in text
    assert "feature_extractor.* — 318 keys" in text      # grouped by prefix, not 318 lines
    assert len(text.splitlines()) < 40
    assert len(err.value.missing) == 441 and len(err.value.unexpected) == 331


def test_pymaf_shapedirs_report(tmp_path):
    model = PyMAF()
    sd = model.state_dict()
    for i in range(3):
        sd[f"regressor.{i}.smpl.shapedirs"] = torch.zeros(6890, 3, 300)
    torch.save({"model": sd}, tmp_path / "pymaf.pt")
    with pytest.raises(CheckpointMismatch) as err:
        load_pymaf_checkpoint(model, tmp_path / "pymaf.pt")
    text = str(err.value)
    assert "regressor.{0,1,2}.smpl.shapedirs: checkpoint [6890, 3, 300] vs model [6890, 3, 10]" in text
    assert "10-PC SMPL" in text
    assert err.value.missing == [] and err.value.unexpected == []
    assert len(err.value.mismatched) == 3


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"not a checkpoint at all" * 10, "truncated or corrupt"),
])
def test_unreadable_files(tmp_path, content, match):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_spin_checkpoint(HMR(backbone="resnet18"), path)


@pytest.mark.parametrize("legacy", [True, False])
def test_truncated_files(tmp_path, legacy):
    path = tmp_path / "cut.pt"
    torch.save({"model": {"a": torch.randn(1000)}, "epoch": 1}, path, _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_spin_checkpoint(HMR(backbone="resnet18"), path)
    with pytest.raises(CheckpointError, match="not found"):
        load_spin_checkpoint(HMR(backbone="resnet18"), tmp_path / "missing.pt")


class _Payload:
    pass


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_code_running_pickle_is_refused_not_called_corrupt(tmp_path, protocol):
    """A checkpoint whose pickle calls a function (`__reduce__`) is reported as refused —
    nothing ran — not as a damaged download (torch's wording differs with the protocol)."""
    import os

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": Evil()}, f, protocol=protocol)
    with pytest.raises(CheckpointError, match="not unpickled and nothing in it ran") as err:
        load_spin_checkpoint(HMR(backbone="resnet18"), path)
    assert "truncated" not in str(err.value) and not marker.exists()


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "obj.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Payload()}, f, protocol=2)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_spin_checkpoint(HMR(backbone="resnet18"), path)


def test_cliff_module_prefix_and_old_batchnorm(tmp_path):
    sd = randomised(CLIFF(backbone="resnet50"))
    wrapped = {f"module.{k}": v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    torch.save({"model": wrapped}, tmp_path / "res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt")
    model = CLIFF(backbone="resnet50")
    report = load_cliff_checkpoint(model, tmp_path / "res50-PA45.7_MJE72.0_MVE85.3_3dpw.pt")
    assert report.stripped_prefix == "module." and len(report.filled) == 53
    assert torch.equal(model.state_dict()["fc1.weight"], sd["fc1.weight"])


def test_meta_hmr_entries(tmp_path):
    main, aux = randomised(HMR(backbone="resnet18"), 1), randomised(CLIFF(backbone="resnet50"), 2)
    torch.save({"model": main, "model_aux": aux, "epoch": 5}, tmp_path / "meta.pt")
    aux_model = CLIFF(backbone="resnet50")
    load_meta_hmr_checkpoint(aux_model, tmp_path / "meta.pt", which="model_aux")
    assert torch.equal(aux_model.state_dict()["deccam.bias"], aux["deccam.bias"])
    torch.save({"model": main}, tmp_path / "main_only.pt")
    with pytest.raises(CheckpointError, match=r"no 'model_aux' entry.*\['model'\]"):
        load_meta_hmr_checkpoint(aux_model, tmp_path / "main_only.pt", which="model_aux")


def test_synthetic_official_pymaf_checkpoint_loads_and_runs(tmp_path, smpl_body):
    """Random weights in the released layout, legacy format on cuda:0, fake SMPL."""
    torch.manual_seed(0)
    source = PyMAF(smpl_body, layout="official", backbone="resnet18").eval()
    sd = randomised(source, 3)  # the released file also embeds SMPL and the Dmap selections
    assert sd["regressor.2.smpl.v_template"].abs().sum() > 0 and sd["maf_extractor.1.Dmap"].sum() == 431
    source.load_state_dict(sd)
    path = tmp_path / "PyMAF_model_checkpoint.pt"
    save_legacy_cuda({"model": sd, "epoch": 199}, path)
    model = create_model("pymaf", smpl_body, layout="official", backbone="resnet18").eval()
    load_pymaf_checkpoint(model, path)
    assert model.weights_trained
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in sd.items())  # same weights → same outputs
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.final.mesh.vertices.shape == (1, 6890, 3) and torch.isfinite(out.final.mesh.vertices).all()
    assert out.levels[2].sampled_vertex_ids.tolist() == list(smpl_body.sampling_vertex_ids)


def test_project_checkpoint_round_trip(tmp_path):
    body = load_body("open")
    model = create_model("hmr_resnet18", body)
    model.load_state_dict(randomised(model, 4))
    path = save_checkpoint(model, tmp_path / "hmr.safetensors", {"notes": "10 epochs on synthetic renders"},
                           trained=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hmr.json", "hmr.safetensors"]  # no temp files left
    sidecar = json.loads((tmp_path / "hmr.json").read_text())
    assert sidecar == read_project_config(path)
    assert sidecar["architecture"] == "hmr_resnet18" and sidecar["body"] == "open"
    assert sidecar["weights_trained"] is True and sidecar["config"]["notes"].startswith("10 epochs")
    loaded = load_project_checkpoint(path)  # body "open" is reloaded by name
    assert loaded.weights_trained and loaded.body is body
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    x = torch.randn(1, 3, 224, 224)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x).final.pose6d, loaded(x).final.pose6d)


def test_project_checkpoint_is_written_atomically(tmp_path):
    model = create_model("hmr_resnet18", None)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    before = path.read_bytes()
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # the failed save would write different bytes
    with mock.patch("os.fsync", side_effect=OSError("disk full")):  # fails after the temp file is written
        with pytest.raises(OSError, match="disk full"):
            save_checkpoint(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_project_checkpoint_errors(tmp_path, smpl_body):
    model = create_model("hmr_resnet18", smpl_body)
    path = save_checkpoint(model, tmp_path / "smpl.safetensors")
    with pytest.raises(CheckpointError, match="'smpl' body"):
        load_project_checkpoint(path)  # the SMPL body cannot be loaded by name alone
    assert load_project_checkpoint(path, body=smpl_body).body is smpl_body
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        load_project_checkpoint(path, body=smpl_body)
    with pytest.raises(ValueError, match="create_model"):
        save_checkpoint(HMR(backbone="resnet18"), tmp_path / "bare.safetensors")


def test_meta_hmr_cliff_resnet_networks_load_with_the_trunk_at_the_root(tmp_path):
    """Meta-HMR's CliffMetaNet_resnet / CliffAuxNet_resnet keep the ResNet trunk at the root
    of the keys (fact sheet); they load strictly into the project's CLIFF-Res50 with 10 / 3
    IEF iterations and compute what the source network computes."""
    from core.models.checkpoints import meta_hmr_kind

    main_src, aux_src = CLIFF(backbone="resnet50", n_iter=10), CLIFF(backbone="resnet50", n_iter=3)
    main_sd, aux_sd = randomised(main_src, 3), randomised(aux_src, 4)
    main_src.load_state_dict(main_sd)
    root = lambda sd: {k[len("encoder."):] if k.startswith("encoder.") else k: v for k, v in sd.items()}  # noqa: E731
    assert "conv1.weight" in root(main_sd) and tuple(root(main_sd)["fc1.weight"].shape)[1] == 2208
    assert meta_hmr_kind(root(main_sd)) == "cliff_resnet"
    torch.save({"model": root(main_sd), "model_aux": root(aux_sd)}, tmp_path / "meta_cliff.pt")
    main, aux = CLIFF(backbone="resnet50", n_iter=10), CLIFF(backbone="resnet50", n_iter=3)
    load_meta_hmr_checkpoint(main, tmp_path / "meta_cliff.pt", "model")
    load_meta_hmr_checkpoint(aux, tmp_path / "meta_cliff.pt", "model_aux")
    for k, v in aux_sd.items():
        assert torch.equal(aux.state_dict()[k], v), k
    x = torch.randn(1, 3, 256, 192)
    info = torch.tensor([[0.1, -0.2, 0.3]])
    main_src.eval(), main.eval()
    with torch.no_grad():
        a, b = main_src(x, info), main(x, info)
    assert len(b.iterations) == 10
    torch.testing.assert_close(a.final.rotmat, b.final.rotmat)
    with pytest.raises(CheckpointError, match="create_model\\('cliff_res50'"):
        load_meta_hmr_checkpoint(HMR(backbone="resnet50"), tmp_path / "meta_cliff.pt", "model")


def test_meta_hmr_hrnet_main_network_is_refused_by_name(tmp_path):
    sd = {"backbone.conv1.weight": torch.zeros(64, 3, 3, 3), "fc1.weight": torch.zeros(1024, 880),
          "fc1.bias": torch.zeros(1024)}
    torch.save({"model": sd}, tmp_path / "meta_hrnet.pt")
    with pytest.raises(CheckpointError, match="pose-HRNet-W48.*not supported"):
        load_meta_hmr_checkpoint(CLIFF(backbone="resnet50", n_iter=10), tmp_path / "meta_hrnet.pt")
    from core.fitting.meta_hmr import MetaHMRMethod

    with pytest.raises(ValueError, match="HMR variants only"):
        MetaHMRMethod(checkpoint=str(tmp_path / "meta_hrnet.pt"))


def test_meta_hmr_method_loads_the_hmr_main_and_auxiliary_networks(tmp_path):
    """Meta-HMR's HMR variants (SPIN's layout, MetaLinear saving plain fc keys): the method
    builds the main network with 10 IEF iterations and the auxiliary with 3, strictly loaded."""
    from core.fitting.meta_hmr import MetaHMRMethod

    main_sd, aux_sd = randomised(HMR(backbone="resnet50"), 5), randomised(HMR(backbone="resnet50"), 6)
    torch.save({"model": main_sd, "model_aux": aux_sd, "epoch": 3}, tmp_path / "meta_hmr.pt")
    m = MetaHMRMethod(checkpoint=str(tmp_path / "meta_hmr.pt"))
    assert m.model.n_iter == 10 and m.aux_model.n_iter == 3
    assert m.model.weights_trained and m.aux_model.weights_trained
    assert torch.equal(m.model.state_dict()["decpose.weight"], main_sd["decpose.weight"])
    assert torch.equal(m.aux_model.state_dict()["decpose.weight"], aux_sd["decpose.weight"])
