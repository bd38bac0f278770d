"""MeshPose's low-poly template: the decimation on a small mesh, the committed asset's
structure and labels, and (slow) that the build script reproduces it. Fixtures ``body``,
``lowpoly``: tests/conftest.py."""
import numpy as np
import pytest
import trimesh

from core.models.meshpose.decimate import decimate_half_edge
from core.models.meshpose.lowpoly import LowPolyTemplate, build_lowpoly, lowpoly_path


def _edge_face_counts(faces):
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return counts


def test_decimation_keeps_a_symmetric_closed_subset():
    sphere = trimesh.creation.icosphere(subdivisions=2)              # 162 vertices, genus 0
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    mirrored = v * [-1, 1, 1]
    mirror = np.array([np.argmin(((v - m) ** 2).sum(1)) for m in mirrored])
    assert np.allclose(v[mirror], mirrored, atol=1e-6)
    labels = (v[f].mean(1)[:, 1] > 0).astype(int)                      # two charts: upper/lower half
    res = decimate_half_edge(v, f, 60, charts=labels, mirror=mirror)
    assert len(res.vertex_ids) == 60 and res.symmetric
    assert (np.diff(res.vertex_ids) > 0).all()                        # a sorted subset of the input
    assert (_edge_face_counts(res.faces) == 2).all()                  # closed 2-manifold
    assert len(res.vertex_ids) - len(_edge_face_counts(res.faces)) + len(res.faces) == 2   # genus 0
    # every output face has all its corners in its chart (the chart constraint)
    chart_of = [set() for _ in range(len(v))]
    for fi, tri in enumerate(f):
        for a in tri:
            chart_of[a].add(labels[fi])
    for tri, src in zip(res.vertex_ids[res.faces], res.face_source):
        assert all(labels[src] in chart_of[a] for a in tri)
    # outward orientation is kept: positive volume
    assert trimesh.Trimesh(v[res.vertex_ids], res.faces, process=False).volume > 0
    with pytest.raises(ValueError, match="target_vertices"):
        decimate_half_edge(v, f, 2)


def test_committed_template_structure(body, lowpoly):
    V = lowpoly.num_vertices
    assert 500 <= V <= 540 and lowpoly.body_name == "open"
    assert np.array_equal(np.unique(lowpoly.vertex_ids), lowpoly.vertex_ids)
    assert (_edge_face_counts(lowpoly.faces) == 2).all()
    assert V - len(lowpoly.edges) + lowpoly.num_faces == 2
    rest = body.v_template.numpy()[lowpoly.vertex_ids]
    assert trimesh.Trimesh(rest, lowpoly.faces, process=False).volume > 0
    # labels carried over from the body
    assert np.array_equal(lowpoly.vertex_part, body.vertex_part[lowpoly.vertex_ids])
    assert np.allclose(lowpoly.vertex_uv, body.vertex_uv[lowpoly.vertex_ids])
    assert set(np.unique(lowpoly.face_part)) == set(range(1, 25))
    uv_of = {}
    for fi, tri in enumerate(body.faces):
        for k in range(3):
            uv_of[(tri[k], body.face_part[fi])] = body.face_uv[fi, k]
    for fi in range(0, lowpoly.num_faces, 7):
        for k in range(3):
            key = (lowpoly.vertex_ids[lowpoly.faces[fi, k]], lowpoly.face_part[fi])
            assert np.allclose(lowpoly.face_uv[fi, k], uv_of[key])
    assert lowpoly.in_chart[np.arange(V), lowpoly.vertex_part].all()
    # left/right symmetry
    flip = lowpoly.flip_permutation
    assert flip is not None and np.array_equal(flip[flip], np.arange(V))
    assert np.array_equal(lowpoly.vertex_ids[flip], body.flip_permutation[lowpoly.vertex_ids])


def test_hands_and_feet_are_sparser(body, lowpoly):
    full = np.bincount(body.vertex_part, minlength=25)
    low = np.bincount(lowpoly.vertex_part, minlength=25)
    density = low / np.maximum(full, 1)
    overall = lowpoly.num_vertices / body.num_vertices
    print("kept fraction: overall %.3f, hands %s, feet %s" % (overall, density[3:5].round(3), density[5:7].round(3)))
    assert (density[3:5] < 0.25 * overall).all()                      # hands
    assert (density[5:7] < 0.5 * overall).all()                       # feet
    assert lowpoly.info["rest_surface_distance_mm"]["mean"] < 10.0


def test_template_save_load_round_trip(tmp_path, lowpoly):
    lowpoly.save(tmp_path / "lp.npz")
    back = LowPolyTemplate.load(tmp_path / "lp.npz")
    assert np.array_equal(back.faces, lowpoly.faces) and np.array_equal(back.flip_permutation, lowpoly.flip_permutation)
    assert back.info == lowpoly.info
    with pytest.raises(FileNotFoundError, match="build_lowpoly"):
        LowPolyTemplate.load(tmp_path / "missing.npz")


@pytest.mark.slow
def test_build_script_reproduces_the_committed_template(body):
    from core.models.meshpose.build_lowpoly import same_template

    assert same_template(build_lowpoly(body), LowPolyTemplate.load(lowpoly_path("open")))


def test_collapse_undo_restores_the_mesh():
    from core.models.meshpose.decimate import _Mesh

    sphere = trimesh.creation.icosphere(subdivisions=1)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.faces)
    charts = [frozenset({0})] * len(v)
    mesh = _Mesh(v, f, charts, np.ones(len(v)), 0.0, 0.2)
    u, w = int(f[0, 0]), int(f[0, 1])
    before = (mesh.f.copy(), mesh.face_alive.copy(), [set(s) for s in mesh.vf], mesh.Q.copy(),
              mesh.alive.copy(), mesh.version.copy())
    assert mesh.valid(u, w)
    snap = mesh.snapshot(u, w)
    mesh.collapse(u, w)
    assert not mesh.alive[u] and mesh.face_alive.sum() == len(f) - 2
    mesh.restore(snap)
    after = (mesh.f, mesh.face_alive, mesh.vf, mesh.Q, mesh.alive, mesh.version)
    for a, b in zip(before, after):
        assert (a == b) if isinstance(a, list) else np.array_equal(a, b)
