"""The fast joints-only evaluator (issue 17): equals the body's reference evaluation,
values and gradients, on the open body and on a SMPL-layout body with pose correctives."""
import numpy as np
import pytest
import torch

from core.body import SMPL_PARENTS, load_body
from core.body.joints_only import _SKEW, pointer_jumping_rounds, rodrigues
from core.geometry import axis_angle_to_rotmat
from tests.helpers.fake_smpl import write_fake_smpl_dir


def _params(B, seed, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, 10, generator=g), torch.randn(B, 69, generator=g) * scale,
            torch.randn(B, 3, generator=g))


def _reference(body, betas, pose, go):
    return body(betas=betas, body_pose=pose, global_orient=go, vertex_ids=torch.arange(0), return_vertices=False)


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    smpl = load_body("smpl", data_dir=write_fake_smpl_dir(tmp_path_factory.mktemp("smpl"), chumpy=False))
    assert smpl.posedirs is not None
    return {"open": load_body("open"), "smpl": smpl}


@pytest.mark.parametrize("name", ["open", "smpl"])
@pytest.mark.parametrize("B", [1, 5])
def test_joints_only_equals_the_reference_values_and_gradients(bodies, name, B):
    body = bodies[name]
    fast = body.joints_only()
    assert body.joints_only() is fast            # built once
    inputs = _params(B, seed=B)
    a = [t.clone().requires_grad_(True) for t in inputs]
    b = [t.clone().requires_grad_(True) for t in inputs]
    ref, out = _reference(body, *a), fast(*b)
    assert out.vertices is None and out.joints.shape == (B, 49, 3)
    torch.testing.assert_close(out.joints, ref.joints, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.smpl_joints, ref.smpl_joints, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.rotmats, ref.rotmats, rtol=0, atol=1e-6)
    w = torch.randn(B, 49, 3, generator=torch.Generator().manual_seed(9))
    (ref.joints * w).sum().backward()
    (out.joints * w).sum().backward()
    for ga, gb in zip(a, b):
        torch.testing.assert_close(gb.grad, ga.grad, rtol=1e-4, atol=1e-4)
    rot = ref.rotmats.detach()
    torch.testing.assert_close(fast.from_rotmats(inputs[0], rot).joints, ref.joints.detach(), rtol=0, atol=1e-5)


def test_short_betas_are_padded(bodies):
    body = bodies["open"]
    betas, pose, go = _params(2, seed=3)
    torch.testing.assert_close(body.joints_only()(betas[:, :4], pose, go).joints,
                               _reference(body, betas[:, :4], pose, go).joints, rtol=0, atol=1e-5)


def _sequential_world(local: np.ndarray, parents) -> np.ndarray:
    """The obvious loop: world_j = world_parent · local_j."""
    world = np.zeros_like(local)
    for j, p in enumerate(parents):
        world[j] = local[j] if p < 0 else world[p] @ local[j]
    return world


@pytest.mark.parametrize("parents", [SMPL_PARENTS, [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],   # a chain of 11
                                     [-1, 0, 0, 1, 1, 2, 2, 3, 4, 5]])
def test_pointer_jumping_equals_the_sequential_chain(parents):
    rng = np.random.default_rng(0)
    J = len(parents)
    local = rng.normal(size=(J, 4, 4))
    rounds = pointer_jumping_rounds(list(parents))
    depth = 0
    for j in range(J):
        d, p = 1, parents[j]
        while p >= 0:
            d, p = d + 1, parents[p]
        depth = max(depth, d)
    assert len(rounds) == int(np.ceil(np.log2(depth)))
    world = local.copy()
    for anc in rounds:
        world = np.concatenate([world, np.eye(4)[None]])[anc] @ world
    np.testing.assert_allclose(world, _sequential_world(local, parents), rtol=1e-10)


@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-3, 0.3, 3.0])
def test_rodrigues_equals_axis_angle_to_rotmat(scale):
    aa = torch.randn(500, 3, generator=torch.Generator().manual_seed(1)) * scale
    a, b = aa.clone().requires_grad_(True), aa.clone().requires_grad_(True)
    R = rodrigues(a.t().reshape(1, 3, 500), torch.tensor(_SKEW, dtype=torch.float32))[0].permute(2, 0, 1)
    ref = axis_angle_to_rotmat(b)
    torch.testing.assert_close(R, ref, rtol=0, atol=1e-6)
    w = torch.randn(500, 3, 3, generator=torch.Generator().manual_seed(2))
    (R * w).sum().backward()
    (ref * w).sum().backward()
    assert torch.isfinite(a.grad).all()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-5)
