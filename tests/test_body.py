"""The open body and the SMPL loader (issue: foundation)."""
import json
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from core.body import BodyFileError, load_body
from core.body.constants import SMPL_JOINT_NAMES, SPIN_JOINT_NAMES
from core.utils.io import UnsafePickleError
from tests.helpers.fake_smpl import write_fake_smpl_dir


@pytest.fixture(scope="module")
def body():
    return load_body("open")


def random_params(B, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return dict(betas=torch.randn(B, 10, generator=g),
                body_pose=torch.randn(B, 69, generator=g) * scale,
                global_orient=torch.randn(B, 3, generator=g))


def test_open_body_mesh(body):
    assert body.num_vertices <= 8000
    f = body.faces
    assert f.min() == 0 and f.max() == body.num_vertices - 1
    n = body.num_vertices
    A = sp.coo_matrix((np.ones(f.size), (f.ravel(), np.roll(f, 1, 1).ravel())), shape=(n, n))
    ncomp, _ = connected_components(A, directed=False)
    assert ncomp == 1
    # closed, consistently oriented: every directed edge appears once, its reverse once
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(e, axis=0)) == len(e)


def test_rest_pose_is_t_pose_facing_z_up_y(body):
    o = body(betas=torch.zeros(1, 10))
    J = o.smpl_joints[0].numpy()
    idx = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    assert J[idx["head"], 1] > J[idx["pelvis"], 1] + 0.4                  # y up
    assert J[idx["left_wrist"], 0] > 0.5 and J[idx["right_wrist"], 0] < -0.5  # arms out, left = +x
    assert abs(J[idx["left_wrist"], 1] - J[idx["left_shoulder"], 1]) < 0.05   # horizontal arms
    nose = o.joints[0, SPIN_JOINT_NAMES.index("OP Nose")].numpy()
    assert nose[2] > J[idx["head"], 2] + 0.05                             # facing +z


def test_smplx_smpl_poses_open_body(body):
    sm = body.smplx_model()
    p = random_params(3)
    ours = body(**p)
    ref = sm(**p)
    assert torch.allclose(ref.vertices, ours.vertices, atol=1e-5)
    assert torch.allclose(ref.joints[:, :24], ours.smpl_joints, atol=1e-5)


def test_shape_pca_unit_variance(body):
    bt = body.aux["betas_train"]
    assert bt.shape[1] == 10
    np.testing.assert_allclose(bt.var(0, ddof=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(bt.mean(0), 0.0, atol=1e-4)
    # the held-out population lands on a similar spread (not forced by construction)
    bh = body.aux["betas_held_out"]
    assert np.all((bh.std(0) > 0.8) & (bh.std(0) < 1.25))
    info = json.loads(str(body.aux["build_info"]))
    assert info["shape_reconstruction_error_mm_held_out"] < 3.0


@pytest.mark.parametrize("name", ["smpl24", "extra", "h36m", "coco"])
def test_regressor_rows(body, name):
    R = body.regressor(name)
    assert R.shape[1] == body.num_vertices
    assert (R >= 0).all()
    np.testing.assert_allclose(R.sum(1), 1.0, atol=1e-5)
    assert ((R > 0).sum(1) <= 60).all()         # sparse


def test_joint_regressor_tracks_population(body):
    info = json.loads(str(body.aux["build_info"]))
    assert info["joint_regressor_error_mm_held_out"] < 10.0


def test_subset_equals_full(body):
    p = random_params(4, seed=1)
    full = body(**p)
    ids = torch.as_tensor(body.sampling_vertex_ids)
    sub = body(**p, vertex_ids=ids)
    assert sub.vertices.shape == (4, len(ids), 3)
    assert torch.allclose(sub.vertices, full.vertices[:, ids], atol=1e-6)
    assert torch.allclose(sub.joints, full.joints, atol=1e-6)
    joints_only = body(**p, vertex_ids=torch.arange(0))
    assert torch.allclose(joints_only.joints, full.joints, atol=1e-6)


def test_spin49_layout(body):
    o = body(**random_params(2, seed=2))
    J, S = o.joints, o.smpl_joints
    assert J.shape == (2, 49, 3)
    # OP RShoulder = SMPL R_shoulder, Right Ankle (GT) = SMPL R_ankle, OP MidHip = pelvis
    assert torch.allclose(J[:, 2], S[:, 17]) and torch.allclose(J[:, 25], S[:, 8])
    assert torch.allclose(J[:, 8], S[:, 0])
    assert torch.allclose(J[:, 0], J[:, 44])    # OP Nose == Nose


def test_flip_permutation_maps_mesh_to_mirror(body):
    perm = body.flip_permutation
    v = body.v_template.numpy()
    assert np.array_equal(perm[perm], np.arange(len(perm)))
    assert np.abs(v[perm] * [-1, 1, 1] - v).max() < 1e-3
    # also for a shape: the population is left/right symmetric
    vb = body(betas=torch.tensor([[1.5, -1, 0.5, 0, 0, 0, 0, 0, 0, 0.0]])).vertices[0].numpy()
    assert np.abs(vb[perm] * [-1, 1, 1] - vb).max() < 2e-3


def test_mean_params(body):
    mp = body.mean_params
    assert mp["pose"].shape == (144,) and mp["shape"].shape == (10,)
    np.testing.assert_allclose(mp["pose"][:6], [1, 0, 0, -1, 0, 0], atol=1e-6)
    np.testing.assert_allclose(mp["cam"], [0.9, 0, 0])


def test_parts_and_uv(body):
    assert set(np.unique(body.vertex_part)) == set(range(1, 25))
    assert body.face_uv.shape == (len(body.faces), 3, 2)
    assert body.face_uv.min() >= 0 and body.face_uv.max() <= 1


def test_downsampling_chain(body):
    levels, ups = body.downsampling()
    n1, n2 = len(levels[0][0]), len(levels[1][0])
    assert 1500 < n1 < 2000 and 380 < n2 < 480
    assert ups[0].shape == (body.num_vertices, n1) and ups[1].shape == (n1, n2)
    np.testing.assert_allclose(np.asarray(ups[0].sum(1)).ravel(), 1.0, atol=1e-5)
    # upsampling the selected coarse vertices reproduces the mesh closely
    v = body.v_template.numpy()
    rec = ups[0] @ v[levels[0][0]]
    assert np.linalg.norm(rec - v, axis=1).mean() < 0.01


def test_body_bends_rigidly(body):
    # bending a knee by 90° keeps the shin length and moves the ankle backwards
    pose = torch.zeros(1, 23, 3)
    pose[0, 3, 0] = np.pi / 2                   # left knee (joint 4 → body_pose index 3)
    rest = body(betas=torch.zeros(1, 10)).smpl_joints[0]
    bent = body(betas=torch.zeros(1, 10), body_pose=pose.reshape(1, 69)).smpl_joints[0]
    shin = lambda J: torch.linalg.norm(J[7] - J[4])  # noqa: E731
    assert torch.isclose(shin(rest), shin(bent), atol=1e-5)
    assert bent[7, 2] < rest[7, 2] - 0.3


def test_export_roundtrip_through_smpl_loader(body, tmp_path):
    from core.body.export import export_body

    written = export_body(body, tmp_path, gendered_copies=True)
    for rel in ("smpl/SMPL_NEUTRAL.pkl", "smpl/SMPL_MALE.pkl", "smpl/SMPL_FEMALE.pkl", "gmm_08.pkl",
                "J_regressor_extra.npy", "J_regressor_h36m.npy", "smpl_mean_params.npz", "mesh_downsampling.npz",
                "UV_data/UV_Processed.mat"):       # SPIN's and PyMAF's data/ layout
        assert tmp_path / rel in written and (tmp_path / rel).is_file(), rel
    from core.fitting.priors import load_open_prior, load_pose_prior

    gmm = load_pose_prior("smpl", smpl_dir=tmp_path, joint_limits=False).gmm   # SMPLify's format, read back
    torch.testing.assert_close(gmm.means, load_open_prior().gmm.means)
    smpl = load_body("smpl", data_dir=tmp_path)
    p = random_params(2, seed=3)
    a, b = body(**p), smpl(**p)
    assert torch.allclose(a.vertices, b.vertices, atol=1e-6)
    assert torch.allclose(a.joints, b.joints, atol=1e-6)
    np.testing.assert_array_equal(body.sampling_vertex_ids, smpl.sampling_vertex_ids)
    np.testing.assert_array_equal(body.face_part, smpl.face_part)
    np.testing.assert_allclose(body.face_uv, smpl.face_uv, atol=1e-5)
    np.testing.assert_allclose(body.regressor("h36m"), smpl.regressor("h36m"), atol=1e-6)


def test_fake_smpl_folder_loads_with_chumpy_and_posedirs(tmp_path):
    d = write_fake_smpl_dir(tmp_path, chumpy=True)
    b = load_body("smpl", data_dir=d)
    assert b.num_vertices == 6890 and b.posedirs is not None
    assert len(b.sampling_vertex_ids) == 431
    p = random_params(2, seed=4, scale=0.3)
    ref = b.smplx_model()(**p)
    ours = b(**p)
    assert torch.allclose(ref.vertices, ours.vertices, atol=1e-5)   # with pose correctives
    sub = b(**p, vertex_ids=torch.arange(100, 200))
    assert torch.allclose(sub.vertices, ours.vertices[:, 100:200], atol=1e-6)


def test_graphcmr_downsampling_with_pickled_meshes_loads(tmp_path):
    """GraphCMR's published mesh_downsampling.npz also holds `M`, pickled `__main__.MyMesh`
    objects: the loader reads only D/U/F and never unpickles M."""
    import sys

    from core.body import load_body
    from core.body.loading import load_npz_with_object_arrays
    from core.utils.io import UnsafePickleError

    d = write_fake_smpl_dir(tmp_path / "smpl")
    path = d / "mesh_downsampling.npz"
    members = dict(np.load(path, allow_pickle=True))

    class MyMesh:
        def __init__(self, n):
            self.n = n

    main = sys.modules["__main__"]
    MyMesh.__module__, MyMesh.__qualname__ = "__main__", "MyMesh"
    setattr(main, "MyMesh", MyMesh)
    try:
        meshes = np.empty(2, dtype=object)
        meshes[0], meshes[1] = MyMesh(1), MyMesh(2)
        np.savez(path, M=meshes, **members)
    finally:
        delattr(main, "MyMesh")
    with pytest.raises(UnsafePickleError, match="MyMesh"):
        load_npz_with_object_arrays(path)                 # reading everything would unpickle M
    assert set(load_npz_with_object_arrays(path, members=("D", "U", "F"))) == {"D", "U", "F"}
    body = load_body("smpl", data_dir=d)
    levels, ups = body.downsampling()
    assert len(levels) == 2 and len(ups) == 2


@pytest.mark.parametrize("method", ["smplify", "spin", "eft", "meta-hmr"])
def test_optimisation_methods_build_on_a_smpl_folder(method, tmp_path):
    """smpl_dir=... alone means the SMPL body for every method (they used to try the open
    body's files inside the SMPL folder)."""
    from core.methods import create_method

    d = write_fake_smpl_dir(tmp_path / "smpl")
    m = create_method(method, smpl_dir=str(d))
    body = m.body if method in ("smplify", "spin") else m.model.body
    assert body.name == "smpl" and body.num_vertices == load_body("smpl", data_dir=d).num_vertices
    if method != "smplify":                    # the open-body weights are not used on SMPL
        assert not getattr(m.regressor if method == "spin" else m.model, "weights_trained", False)


def test_missing_smpl_files_message(tmp_path):
    with pytest.raises(BodyFileError, match="SMPL_NEUTRAL.pkl.*open body"):
        load_body("smpl", data_dir=tmp_path)
    with pytest.raises(BodyFileError, match="data_dir"):
        load_body("smpl")
    d = write_fake_smpl_dir(tmp_path / "x", with_downsampling=False)
    (d / "J_regressor_extra.npy").unlink()
    with pytest.raises(BodyFileError, match="J_regressor_extra.npy"):
        load_body("smpl", data_dir=d)


def test_malicious_smpl_pickle_is_refused(tmp_path):
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {sentinel}",))

    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": Evil()}, protocol=2))
    np.save(tmp_path / "J_regressor_extra.npy", np.zeros((9, 6890)))
    with pytest.raises(UnsafePickleError):
        load_body("smpl", data_dir=tmp_path)
    assert not sentinel.exists()


def test_bad_pose_shapes_give_clear_errors(body):
    with pytest.raises(ValueError, match="body_pose"):
        body(body_pose=torch.zeros(1, 70))
    with pytest.raises(ValueError, match="betas"):
        body(betas=torch.zeros(1, 12))
    with pytest.raises(ValueError, match="unknown body"):
        load_body("smplx")


def test_resolve_body_from_name_object_and_smpl_folder(tmp_path):
    from core.body import load_body, resolve_body

    d = write_fake_smpl_dir(tmp_path / "smpl")
    assert resolve_body("open") is load_body("open")
    body = load_body("open")
    assert resolve_body(body, smpl_dir=d) is body              # a body object is used as it is
    assert resolve_body("open", smpl_dir=d).name == "smpl"      # a SMPL folder means the SMPL body
    assert resolve_body("smpl", smpl_dir=d) is load_body("smpl", data_dir=d)
