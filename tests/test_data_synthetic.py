"""Synthetic open-body renders: determinism, label consistency (keypoints, camera, IUV,
visibility), labels equal to ``core.render``'s raycast, the batched label raycaster and the
vectorised appearance against slow references, shard writing/resuming and the Dataset view."""
import colorsys
import json
import zipfile

import numpy as np
import pytest
import torch

from core.data.appearance import hsv_to_rgb, pattern_value
from core.data.render_labels import camera_facing, raycast_label_batch, raycast_rasters
from core.data.synthetic import SyntheticGenerator, SyntheticShards, generate_shard, main, save_shard, write_dataset
from core.render.camera import spin_intrinsics
from core.render.iuv import render_maps
from core.render.raycast import face_normals, vertex_normals

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
        vis = (np.unpackbits(a["visible_bits"][i])[:V].astype(bool)
               & np.unpackbits(a["in_crop_bits"][i])[:V].astype(bool))
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


def _camera_vertices(body, a):
    """(n, V, 3) float32 camera-frame vertices of a shard's samples, as the generator makes them."""
    pose = torch.as_tensor(a["pose"])
    with torch.no_grad():
        v = body(betas=torch.as_tensor(a["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices
    return v.numpy() + a["transl"][:, None]


def test_labels_equal_core_render_raycast(shard, body):
    """Every stored label is core.render's per-mesh raycast of the same vertices (the slow,
    obvious reference): 224² and 56² IUV, per-vertex visibility and in-crop flags."""
    gen, a = shard
    V = body.num_vertices
    K = spin_intrinsics()
    verts = _camera_vertices(body, a)
    q = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    for i in range(len(verts)):
        for key, size in (("", (224, 224)), ("_iuv", (56, 56))):
            ref = render_maps(verts[i:i + 1], body.faces, K, 224, body.face_part, body.face_uv, out_size=size,
                              visibility=not key, cull_back_faces=True)
            np.testing.assert_array_equal(a["part" + key][i], ref.iuv.part[0])
            np.testing.assert_array_equal(a["uv" + key][i], q(np.stack([ref.iuv.u[0], ref.iuv.v[0]])))
            if not key:
                vis = ref.visibility
                np.testing.assert_array_equal(np.unpackbits(a["visible_bits"][i])[:V].astype(bool), vis.visible[0])
                np.testing.assert_array_equal(np.unpackbits(a["in_crop_bits"][i])[:V].astype(bool),
                                              ~vis.out_of_crop[0])


def test_raycast_label_batch_matches_per_mesh_raycast(body):
    """Batched hits (rays only inside the body parts' boxes, culled scenes, front-vertex
    occlusion rays) equal core.render.render_maps mesh by mesh and a cast of every pixel ray
    — also for a body cut by the crop border and one around the camera (whole-raster
    fallback)."""
    gen = SyntheticGenerator(body, nthreads=1)
    rng = np.random.default_rng(4)
    p = gen.sample_params(rng, 2)
    pose = torch.as_tensor(p["pose"])
    with torch.no_grad():
        v = body(betas=torch.as_tensor(p["betas"]), body_pose=pose[:, 3:], global_orient=pose[:, :3]).vertices.numpy()
    _, transl = gen.place_camera(v, rng)
    verts = v + transl[:, None]
    cut = verts[0] + np.array([0.0, 0.6, 0.0], np.float32) * verts[0, :, 2:3].mean() / 5000 * 150
    # the camera inside the body: part of it behind the camera, the rest filling the view
    behind = verts[1] - np.concatenate([verts[1, :, :2].mean(0), [verts[1, :, 2].min() + 0.1]]).astype(np.float32)
    batch = np.stack([verts[0], verts[1], cut, behind]).astype(np.float32)
    assert (batch[3, :, 2] <= 0).any() and (batch[3, :, 2] > 0).any()
    K = spin_intrinsics()
    sizes = [(224, 224), (56, 56), (30, 40)]
    hits = raycast_label_batch(batch, body.faces, K, 224, sizes, face_groups=body.face_part, nthreads=1)
    one_box = raycast_label_batch(batch, body.faces, K, 224, sizes[:1], nthreads=1)
    np.testing.assert_array_equal(one_box.rasters[0].face_id_map(4), hits.rasters[0].face_id_map(4))
    for k, size in enumerate(sizes):
        fid = hits.rasters[k].face_id_map(len(batch))
        for b in range(len(batch)):
            ref = render_maps(batch[b:b + 1], body.faces, K, 224, out_size=size, visibility=k == 0,
                              cull_back_faces=True)
            np.testing.assert_array_equal(fid[b], ref.hits.face_id[0], err_msg=f"raster {size}, mesh {b}")
            if k == 0:                # every pixel ray cast: the part boxes leave out no hit
                full = raycast_rasters(batch[b], body.faces, K, 224, [size], vertex_occlusion=False, nthreads=1)
                np.testing.assert_array_equal(fid[b], full[0].face_id[0])
            sel = hits.rasters[k].batch == b
            order = np.argsort(hits.rasters[k].pixel[sel])
            np.testing.assert_array_equal(hits.rasters[k].bary[sel][order], ref.hits.bary[0][fid[b] >= 0])
            if k == 0 and b < 3:      # core.render's visibility needs all vertices in front of the camera
                np.testing.assert_array_equal(hits.visible[b], ref.visibility.visible[0])
                np.testing.assert_array_equal(hits.back_facing[b], ref.visibility.back_facing[0])
    coverage = (hits.rasters[0].face_id_map(4) >= 0).mean((1, 2))
    assert coverage[2] > 0.01 and coverage[3] > 0.5                           # the cut body, the body around the camera
    with pytest.raises(ValueError, match="vertices"):
        raycast_label_batch(batch[0], body.faces, K, 224, sizes)
    with pytest.raises(ValueError, match="face_groups"):
        raycast_label_batch(batch, body.faces, K, 224, sizes, face_groups=body.face_part[:-1])


def test_camera_facing_matches_core_render(body):
    v = np.random.default_rng(0).normal(size=(2, body.num_vertices, 3)).astype(np.float32) * 0.3
    v[..., 2] += 5.0
    faces = np.asarray(body.faces)
    facing, vn = camera_facing(v, faces)
    fn = face_normals(v, faces, normalize=False)
    np.testing.assert_array_equal(facing, np.einsum("bfk,bfk->bf", fn, v[:, faces[:, 0]]) <= 0)
    np.testing.assert_array_equal(vn, vertex_normals(v, faces))


def test_hsv_and_patterns_match_slow_references():
    rng = np.random.default_rng(0)
    hsv = rng.random((200, 3)).astype(np.float32)
    ref = np.array([colorsys.hsv_to_rgb(*c) for c in hsv.astype(np.float64)])
    np.testing.assert_allclose(hsv_to_rgb(hsv), ref, atol=1e-5)
    n = 5000
    kind, u, v = rng.integers(5, size=n), rng.random(n), rng.random(n)
    freq, noise = rng.uniform(2, 12, n), rng.random(n)
    expected = np.zeros(n)
    for i in range(n):
        fu, fv = freq[i] * u[i], freq[i] * v[i]
        expected[i] = [0.0, float(np.sin(2 * np.pi * fu) > 0), float(np.sin(2 * np.pi * fv) > 0),
                       (np.floor(fu) + np.floor(fv)) % 2, noise[i]][kind[i]]
    np.testing.assert_array_equal(pattern_value(kind, u, v, freq, noise), expected)


def test_save_shard_layout(shard, tmp_path):
    _, a = shard
    path = tmp_path / "s.npz"
    save_shard(path, a)
    with zipfile.ZipFile(path) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds.pop("image.npy") == zipfile.ZIP_STORED
    assert set(kinds.values()) == {zipfile.ZIP_DEFLATED} and len(kinds) == len(a) - 1
    with np.load(path) as z:
        for k in a:
            np.testing.assert_array_equal(z[k], a[k], err_msg=k)


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
