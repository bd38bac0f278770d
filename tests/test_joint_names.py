"""Joint-set constants: sizes, flip permutations against the names, index maps against the
names (a slow obvious reference: normalise every name to a side + body part and compare)."""
import re

import pytest

from core.body import joint_names as jn


def canon(name: str) -> str:
    """Normalise a joint name across conventions to e.g. 'left ankle', 'nose', 'neck lsp'."""
    s = name
    s = re.sub(r"^OP ", "", s)
    s = re.sub(r"^([LR])(?=[A-Z])", lambda m: {"L": "left ", "R": "right "}[m.group(1)], s)
    s = s.replace("_", " ").replace("(", "").replace(")", "")
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", s)
    return " ".join(s.lower().split())


def mirror(name: str) -> str:
    c = canon(name)
    if c.startswith("left "):
        return "right " + c[5:]
    if c.startswith("right "):
        return "left " + c[6:]
    for a, b in (("left", "right"),):
        if f" {a}" in c or c.endswith(a):
            return c.replace(a, b)
        if f" {b}" in c or c.endswith(b):
            return c.replace(b, a)
    return c


def test_canon_helper():
    assert canon("OP LBigToe") == "left big toe"
    assert canon("Right Ankle") == "right ankle"
    assert canon("left_foot_index") == "left foot index"
    assert canon("Neck (LSP)") == "neck lsp"
    assert mirror("OP RHeel") == "left heel"
    assert mirror("mouth_left") == "mouth right"


@pytest.mark.parametrize("names,n", [
    (jn.OPENPOSE_BODY25_NAMES, 25), (jn.OPENPOSE_COCO18_NAMES, 18), (jn.J24_NAMES, 24),
    (jn.SPIN_49_NAMES, 49), (jn.SMPL_24_NAMES, 24), (jn.H36M_17_NAMES, 17),
    (jn.COCO_17_NAMES, 17), (jn.MEDIAPIPE_33_NAMES, 33), (jn.J14_NAMES, 14),
    (jn.J17_NAMES, 17),
])
def test_name_lists_sizes_unique(names, n):
    assert len(names) == n
    assert len(set(names)) == n


def test_spin49_table_spot_checks():
    n = jn.SPIN_49_NAMES
    assert n[0] == "OP Nose" and n[8] == "OP MidHip" and n[24] == "OP RHeel"
    assert n[25] == "Right Ankle" and n[37] == "Neck (LSP)" and n[38] == "Top of Head (LSP)"
    assert n[39] == "Pelvis (MPII)" and n[43] == "Head (H36M)" and n[44] == "Nose"
    assert n[45] == "Left Eye" and n[48] == "Right Ear"


def test_flip_perms_match_fact_sheet():
    assert list(jn.J24_FLIP_PERM) == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15,
                                      16, 17, 18, 19, 21, 20, 23, 22]
    assert list(jn.J49_FLIP_PERM[:25]) == [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11,
                                           16, 15, 18, 17, 22, 23, 24, 19, 20, 21]
    assert list(jn.J49_FLIP_PERM[25:]) == [25 + i for i in jn.J24_FLIP_PERM]
    assert list(jn.SMPL_JOINTS_FLIP_PERM) == [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14,
                                              13, 15, 17, 16, 19, 18, 21, 20, 23, 22]


@pytest.mark.parametrize("perm,names", [
    (jn.J24_FLIP_PERM, jn.J24_NAMES), (jn.J49_FLIP_PERM, jn.SPIN_49_NAMES),
    (jn.BODY25_FLIP_PERM, jn.OPENPOSE_BODY25_NAMES),
    (jn.SMPL_JOINTS_FLIP_PERM, jn.SMPL_24_NAMES), (jn.COCO17_FLIP_PERM, jn.COCO_17_NAMES),
    (jn.MEDIAPIPE33_FLIP_PERM, jn.MEDIAPIPE_33_NAMES),
])
def test_flip_perm_is_involution_and_mirrors_names(perm, names):
    assert sorted(perm) == list(range(len(names)))
    assert all(perm[perm[i]] == i for i in range(len(perm)))
    for i, j in enumerate(perm):
        assert canon(names[j]) == mirror(names[i]), (i, names[i], names[j])


def test_smpl_pose_flip_perm():
    p = jn.SMPL_POSE_FLIP_PERM
    assert len(p) == 72 and sorted(p) == list(range(72))
    for j in range(24):
        src = jn.SMPL_JOINTS_FLIP_PERM[j]
        assert list(p[3 * j: 3 * j + 3]) == [3 * src, 3 * src + 1, 3 * src + 2]


def test_j24_to_jcoco_names():
    assert [canon(jn.J24_NAMES[i]) for i in jn.J24_TO_JCOCO] == [canon(n) for n in jn.COCO_17_NAMES]


def test_body25_to_coco17_names():
    assert [canon(jn.OPENPOSE_BODY25_NAMES[i]) for i in jn.BODY25_TO_COCO17] == \
        [canon(n) for n in jn.COCO_17_NAMES]


def test_coco18_to_body25_names():
    for k, j in enumerate(jn.COCO18_TO_BODY25):
        assert jn.OPENPOSE_COCO18_NAMES[k] == jn.OPENPOSE_BODY25_NAMES[j]


def test_j14_j17_selectors():
    assert list(jn.J24_TO_J17) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17]
    assert jn.J24_TO_J14 == jn.J24_TO_J17[:14]
    assert jn.J24_TO_J19 == jn.J24_TO_J14 + (19, 20, 21, 22, 23)
    assert jn.J14_NAMES[13] == "Head (H36M)"
    assert list(jn.H36M_TO_J17) == [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
    assert jn.H36M_TO_J14 == jn.H36M_TO_J17[:14]


def test_h36m_names_agree_with_j17():
    # Limb joints: same side and part; then neck↔thorax, head, pelvis, spine, jaw.
    for k in range(12):
        assert canon(jn.H36M_17_NAMES[jn.H36M_TO_J17[k]]) == canon(jn.J17_NAMES[k])
    tail = [jn.H36M_17_NAMES[i] for i in jn.H36M_TO_J17[12:]]
    assert tail == ["neck_thorax", "head", "pelvis", "spine", "jaw"]
    assert jn.J17_NAMES[12:] == ("Neck (LSP)", "Head (H36M)", "Pelvis (MPII)",
                                 "Spine (H36M)", "Jaw (H36M)")


@pytest.mark.parametrize("edges,n", [
    (jn.BODY25_EDGES, 25), (jn.SPIN49_EDGES, 49), (jn.COCO17_EDGES, 17), (jn.J24_EDGES, 24),
])
def test_edges_valid(edges, n):
    assert len(set(map(frozenset, edges))) == len(edges)
    for a, b in edges:
        assert 0 <= a < n and 0 <= b < n and a != b


@pytest.mark.parametrize("edges,perm", [
    (jn.BODY25_EDGES, jn.BODY25_FLIP_PERM), (jn.COCO17_EDGES, jn.COCO17_FLIP_PERM),
    (jn.J24_EDGES, jn.J24_FLIP_PERM), (jn.SPIN49_EDGES, jn.J49_FLIP_PERM),
])
def test_edges_symmetric_under_flip(edges, perm):
    es = set(map(frozenset, edges))
    assert {frozenset((perm[a], perm[b])) for a, b in edges} == es


def test_every_joint_in_some_edge():
    for edges, n in ((jn.BODY25_EDGES, 25), (jn.COCO17_EDGES, 17), (jn.J24_EDGES, 24)):
        used = {i for e in edges for i in e}
        assert used == set(range(n))
