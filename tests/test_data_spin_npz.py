"""SPIN .npz loader, fits dictionary, mixed datasets and deterministic streams on a tiny
hand-made dataset (images written to tmp)."""
import cv2
import numpy as np
import pytest
import torch

from core.data import (AugmentConfig, AugmentParams, DeterministicStream, FitsDict, MixedDataset, PositionSampler,
                       SpinNpzDataset, load_fits_file)
from core.data.augment import augment_pose
from core.geometry import denormalize_image

torch.set_num_threads(1)
N = 4


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    """4 images whose pixel (row y, col x) has R = x, G = y (so a crop pixel says where it
    came from), with keypoints, 3D joints and SMPL parameters."""
    root = tmp_path_factory.mktemp("npz")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.stack([xx, yy, np.full_like(xx, 128)], -1).astype(np.uint8)
    names = []
    for i in range(N):
        names.append(f"images/im{i}.png")
        cv2.imwrite(str(root / names[-1]), img[:, :, ::-1])
    part = np.concatenate([rng.uniform(60, 200, size=(N, 24, 2)), np.ones((N, 24, 1))], -1)
    part[:, 13, 2] = 0
    np.savez(root / "toy_train.npz", imgname=np.array(names), center=np.full((N, 2), 128.0),
             scale=np.full(N, 1.0), part=part, openpose=np.zeros((N, 25, 3)),
             S=np.concatenate([rng.normal(size=(N, 24, 3)), np.ones((N, 24, 1))], -1),
             pose=rng.normal(scale=0.3, size=(N, 72)), shape=rng.normal(size=(N, 10)),
             has_smpl=np.array([1, 1, 0, 1]))
    np.savez(root / "toy_2d.npz", imgname=np.array(names[:2]), center=np.full((2, 2), 128.0),
             scale=np.full(2, 1.0), part=part[:2])
    return root


def _crop_lookup(sample, res):
    """Original (x, y) encoded in the crop at each GT keypoint."""
    crop = denormalize_image(sample["img"]).astype(np.float64)
    kp = sample["keypoints"].numpy()
    px = (kp[25:, :2] + 1.0) * res / 2.0 - 0.5           # area convention → pixel index
    ij = np.round(px).astype(int)
    inside = (ij >= 0).all(1) & (ij < res).all(1)
    return crop[ij[inside, 1], ij[inside, 0], :2], inside


@pytest.mark.parametrize("params", [AugmentParams(), AugmentParams(rot=30.0, scale=1.2),
                                    AugmentParams(flip=True), AugmentParams(flip=True, rot=-45.0, scale=0.8)])
def test_keypoints_follow_the_image(tiny_npz, params):
    ds = SpinNpzDataset(tiny_npz / "toy_train.npz", tiny_npz, img_res=224)
    s = ds.get(1, None, params=params)
    assert s["img"].shape == (3, 224, 224) and s["keypoints"].shape == (49, 3)
    got, inside = _crop_lookup(s, 224)
    j24 = ds.keypoints[1, 25:]
    src = j24[:, :2]
    if params.flip:       # the crop's joint k is the original's mirror partner
        from core.body.joint_names import J24_FLIP_PERM
        src = src[list(J24_FLIP_PERM)]
    assert inside.sum() >= 20
    assert np.abs(got - src[inside]).max() < 2.5
    # confidence travels with the joint through the flip permutation
    conf = s["keypoints"][25:, 2].numpy()
    assert (conf == 0).sum() == 1


def test_labels_and_fields(tiny_npz):
    ds = SpinNpzDataset(tiny_npz / "toy_train.npz", tiny_npz, img_res=64)
    p = AugmentParams(flip=True, rot=20.0)
    s = ds.get(0, None, params=p)
    assert s["img"].shape == (3, 64, 64)
    assert s["dataset"] == "toy_train" and int(s["sample_index"]) == 0
    np.testing.assert_allclose(s["pose"].numpy(), augment_pose(ds.pose[0], p), atol=1e-5)
    assert float(s["has_pose_3d"]) == 1.0 and float(s["is_flipped"]) == 1.0 and float(s["rot"]) == 20.0
    assert float(ds.get(2, None, params=p)["has_smpl"]) == 0.0
    d2 = SpinNpzDataset(tiny_npz / "toy_2d.npz", tiny_npz, img_res=32)
    s2 = d2[1]
    assert float(s2["has_smpl"]) == 0 and float(s2["has_pose_3d"]) == 0
    assert torch.all(s2["pose"] == 0)


def test_random_augmentation_is_reproducible(tiny_npz):
    ds = SpinNpzDataset(tiny_npz / "toy_train.npz", tiny_npz, augment=AugmentConfig(), img_res=32)
    a = ds.get(3, np.random.default_rng(5))
    b = ds.get(3, np.random.default_rng(5))
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["keypoints"], b["keypoints"])


def test_clear_errors(tiny_npz, tmp_path):
    np.savez(tmp_path / "bad.npz", imgname=np.array(["x.png"]), center=np.zeros((1, 2)))
    with pytest.raises(KeyError, match="scale"):
        SpinNpzDataset(tmp_path / "bad.npz", tmp_path)
    np.savez(tmp_path / "missing.npz", imgname=np.array(["nope.png"]), center=np.zeros((1, 2)), scale=np.ones(1))
    with pytest.raises(FileNotFoundError, match="image root"):
        SpinNpzDataset(tmp_path / "missing.npz", tmp_path)[0]


# ----------------------------------------------------------------------------- fits
def test_fits_read_write_roundtrip_with_augmentation(tmp_path):
    rng = np.random.default_rng(6)
    pose, betas = rng.normal(scale=0.3, size=(5, 72)), rng.normal(size=(5, 10))
    np.save(tmp_path / "a_fits.npy", np.concatenate([pose, betas], 1))
    fits = FitsDict.from_files({"a": tmp_path / "a_fits.npy"})
    names, idx = ["a", "a", "a"], torch.tensor([0, 3, 4])
    rot, flip = torch.tensor([0.0, 30.0, -50.0]), torch.tensor([0.0, 1.0, 1.0])
    p, b, valid = fits.read(names, idx, rot, flip)
    assert p.shape == (3, 72) and bool(valid.all())
    np.testing.assert_allclose(p[0].numpy(), pose[0], atol=1e-6)
    np.testing.assert_allclose(p[2].numpy(), augment_pose(pose[4], AugmentParams(flip=True, rot=-50.0)), atol=1e-5)
    # writing back what was read (in the augmented frames) leaves the stored fits unchanged
    fits.write(names, idx, p, b, rot, flip)
    np.testing.assert_allclose(fits.fits["a"]["pose"], pose, atol=1e-5)
    # a new fit given in an augmented frame is stored un-augmented
    new = torch.as_tensor(rng.normal(scale=0.3, size=(3, 72)), dtype=torch.float32)
    fits.write(names, idx, new, b, rot, flip, mask=torch.tensor([False, True, False]))
    p2, _, _ = fits.read(names, idx, rot, flip)
    np.testing.assert_allclose(p2[1].numpy(), new[1].numpy(), atol=1e-5)
    np.testing.assert_allclose(fits.fits["a"]["pose"][4], pose[4], atol=1e-5)


def test_fits_files_and_state(tmp_path):
    rng = np.random.default_rng(7)
    np.savez(tmp_path / "b.npz", pose=rng.normal(size=(3, 72)), betas=rng.normal(size=(3, 10)),
             valid_fit=np.array([1, 0, 1]))
    fits = FitsDict.from_files({"b": tmp_path / "b.npz"})
    _, _, valid = fits.read(["b", "b"], [0, 1], [0, 0], [0, 0])
    assert valid.tolist() == [True, False]
    out = fits.save(tmp_path / "out", layout="final")
    again = load_fits_file(out["b"])
    np.testing.assert_allclose(again["pose"], fits.fits["b"]["pose"])
    assert again["valid"].tolist() == [True, False, True]
    static = fits.save(tmp_path / "out", layout="static")["b"]
    assert static.name == "b_fits.npy" and np.load(static).shape == (3, 82)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    state = fits.state_dict()
    clone = FitsDict.zeros({"b": 3})
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.fits["b"]["betas"], fits.fits["b"]["betas"])
    with pytest.raises(ValueError, match="82"):
        np.save(tmp_path / "bad.npy", np.zeros((2, 80)))
        load_fits_file(tmp_path / "bad.npy")
    with pytest.raises(KeyError, match="no fits"):
        fits.read(["zzz"], [0], [0], [0])


# ----------------------------------------------------------------------------- mixing, streams
class _Const:
    def __init__(self, name, n):
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def get(self, index, rng):
        return {"dataset": self.name, "index": index, "noise": float(rng.uniform())}


def test_mixed_dataset_ratios():
    mixed = MixedDataset([_Const("a", 10), _Const("b", 1000), _Const("c", 5)], [0.3, 0.7, 0.0])
    assert len(mixed) == 1000
    rng = np.random.default_rng(8)
    names = [mixed.get(0, rng)["dataset"] for _ in range(4000)]
    frac_a = names.count("a") / len(names)
    assert abs(frac_a - 0.3) < 0.03 and "c" not in names
    with pytest.raises(ValueError, match="ratios"):
        MixedDataset([_Const("a", 1)], [0.5, 0.5])


def test_stream_is_deterministic_and_resumable():
    stream = DeterministicStream(_Const("a", 7), seed=3)
    first = [stream[p] for p in range(21)]
    # every epoch is a permutation
    for e in range(3):
        assert sorted(s["index"] for s in first[7 * e: 7 * e + 7]) == list(range(7))
    assert [stream[p] for p in (5, 19)] == [first[5], first[19]]
    # 2 processes, batch 2: step k covers positions [4k, 4k+4) and a resumed sampler continues
    r0, r1 = list(PositionSampler(4, rank=0, world=2)), list(PositionSampler(4, rank=1, world=2))
    assert sorted(r0 + r1) == list(range(8))
    resumed = PositionSampler(2, start=4, rank=0, world=2)
    assert list(resumed) == [4, 6] and list(resumed) == [8, 10]   # second pass continues
