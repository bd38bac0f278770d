"""Synthetic open-body renders: determinism, label consistency (keypoints, camera, IUV,
visibility), shard writing/resuming and the Dataset view."""
import json

import numpy as np
import pytest
import torch

from core.data.synthetic import SyntheticGenerator, SyntheticShards, generate_shard, main, write_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def body():
    from core.body import load_body

    return load_body("open")


@pytest.fixture(scope="module")
def shard(body):
    gen = SyntheticGenerator(body, nthreads=1)
    return gen, generate_shard(gen, seed=11, shard_index=0, count=3)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, num=5, shard_size=2, seed=3, progress=False)
    return out


def test_deterministic(shard):
    gen, a = shard
    b = generate_shard(gen, seed=11, shard_index=0, count=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = generate_shard(gen, seed=11, shard_index=1, count=3)
    assert not np.array_equal(a["image"], c["image"])


def test_keypoints_and_camera_match_parameters(shard, body):
    gen, a = shard
    pose = torch.as_tensor(a["pose"])
    out = body(betas=torch.as_tensor(a["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3])
    np.testing.assert_allclose(out.joints.numpy(), a["joints3d"], atol=1e-5)
    s, tx, ty = a["cam"].T
    np.testing.assert_allclose(a["transl"][:, 2], 2 * 5000.0 / (224 * s), rtol=1e-5)
    np.testing.assert_allclose(a["transl"][:, :2], np.stack([tx, ty], 1), rtol=1e-6)
    J = a["joints3d"].astype(np.float64) + a["transl"][:, None]
    px = 5000.0 * J[..., :2] / J[..., 2:] + 112.0
    np.testing.assert_allclose(a["keypoints"][..., :2], px, atol=1e-3)
    # bodies are framed: most GT joints inside the crop
    assert np.mean((px >= 0) & (px < 224)) > 0.9


def test_visibility_and_iuv_agree_with_geometry(shard, body):
    gen, a = shard
    V = body.num_vertices
    vertex_part = np.asarray(body.vertex_part)
    pose = torch.as_tensor(a["pose"])
    verts = body(betas=torch.as_tensor(a["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices.numpy()
    for i in range(len(a["image"])):
        vis = np.unpackbits(a["visible_bits"][i])[:V].astype(bool) & np.unpackbits(a["in_crop_bits"][i])[:V].astype(bool)
        X = verts[i] + a["transl"][i]
        px = np.floor(5000.0 * X[:, :2] / X[:, 2:] + 112.0).astype(int)
        part = a["part"][i]
        assert 0.02 < (part > 0).mean() < 0.9
        # visible vertices land on the silhouette, on their own part (3×3 neighbourhood: a
        # vertex on the outline or a part border may fall in a pixel whose centre is outside)
        r, c = px[vis, 1].clip(1, 222), px[vis, 0].clip(1, 222)
        window = np.stack([part[r + dr, c + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1)], 1)
        assert (window > 0).any(1).mean() > 0.99
        assert (window == vertex_part[vis][:, None]).any(1).mean() > 0.95
        # 56² IUV = the same camera at a quarter of the resolution
        small = a["part_iuv"][i]
        centres = (np.arange(56) * 4 + 2).clip(0, 223)
        assert (small == part[np.ix_(centres, centres)]).mean() > 0.93
        # occluded or back-facing vertices exist for a posed body seen from one side
        assert 0.2 < vis.mean() < 0.8


def test_shards_dataset_and_resume(synth_dir):
    meta = json.loads((synth_dir / "meta.json").read_text())
    assert [s["count"] for s in meta["shards"]] == [2, 2, 1]
    ds = SyntheticShards(synth_dir, img_res=64, pixel_noise=0.4)
    assert len(ds) == 5
    s = ds.get(4, np.random.default_rng(0))
    assert s["img"].shape == (3, 64, 64) and s["keypoints"].shape == (49, 3)
    assert s["iuv_part"].shape == (56, 56) and s["part_full"].shape == (224, 224)
    assert s["vertex_weight"].shape == (ds.num_vertices,) and float(s["has_smpl"]) == 1.0
    assert torch.all(s["vertex_weight"] <= s["vertex_visible"])
    assert sorted(ds.epoch_permutation(np.random.default_rng(1)).tolist()) == list(range(5))
    before = SyntheticShards(synth_dir).get(2, np.random.default_rng(0))["img"]
    mtimes = {p.name: p.stat().st_mtime_ns for p in synth_dir.glob("shard_*.npz")}
    (synth_dir / "shard_00001.npz").unlink()
    write_dataset(synth_dir, num=5, shard_size=2, seed=3, progress=False)      # regenerates only the missing one
    assert {p.name: p.stat().st_mtime_ns for p in synth_dir.glob("shard_*.npz")
            if p.name != "shard_00001.npz"} == {k: v for k, v in mtimes.items() if k != "shard_00001.npz"}
    assert torch.equal(SyntheticShards(synth_dir).get(2, np.random.default_rng(0))["img"], before)
    with pytest.raises(FileExistsError, match="other settings"):
        write_dataset(synth_dir, num=5, shard_size=2, seed=4, progress=False)


def test_errors_and_cli(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        SyntheticShards(tmp_path)
    assert main(["--out", str(tmp_path / "cli"), "--num", "1", "--shard-size", "1", "--seed", "2"]) == 0
    assert len(SyntheticShards(tmp_path / "cli")) == 1
