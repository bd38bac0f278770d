"""DensePose's 24 body parts and LSP's 6-part grouping.

DensePose part ids (0 = background):

====  =========================  ====  =========================
 id   part                        id   part
====  =========================  ====  =========================
 1    torso back                  13   lower leg right front
 2    torso front                 14   lower leg left front
 3    right hand                  15   upper arm left (side 1)
 4    left hand                   16   upper arm right (side 1)
 5    left foot                   17   upper arm left (side 2)
 6    right foot                  18   upper arm right (side 2)
 7    upper leg right back        19   lower arm left (side 1)
 8    upper leg left back         20   lower arm right (side 1)
 9    upper leg right front       21   lower arm left (side 2)
 10   upper leg left front        22   lower arm right (side 2)
 11   lower leg right back        23   head right
 12   lower leg left back         24   head left
====  =========================  ====  =========================

LSP 6-part segmentation (SPIN's LSP part evaluation; labels here: 0 background, then):

====  ==========  =====================================================
 id   LSP part    DensePose ids
====  ==========  =====================================================
 1    head        23, 24
 2    torso       1, 2
 3    left arm    15, 17 (upper), 19, 21 (lower), 4 (left hand)
 4    right arm   16, 18 (upper), 20, 22 (lower), 3 (right hand)
 5    left leg    8, 10 (upper), 12, 14 (lower), 5 (left foot)
 6    right leg   7, 9 (upper), 11, 13 (lower), 6 (right foot)
====  ==========  =====================================================

"Left"/"right" are the person's own sides. The 1..6 numbering is ours; SPIN's LSP ground
truth (UP-S1h) may order its labels differently, so remap before scoring against it.
PyMAF's 15 coarse "ann" classes merge front/back pairs: :data:`DENSEPOSE_TO_COARSE15`.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "DENSEPOSE_PART_NAMES",
    "LSP6_PART_NAMES",
    "DENSEPOSE_TO_LSP6",
    "DENSEPOSE_TO_COARSE15",
    "densepose_to_lsp6",
]

DENSEPOSE_PART_NAMES = (
    "background",
    "torso back", "torso front", "right hand", "left hand", "left foot", "right foot",
    "upper leg right back", "upper leg left back", "upper leg right front", "upper leg left front",
    "lower leg right back", "lower leg left back", "lower leg right front", "lower leg left front",
    "upper arm left 1", "upper arm right 1", "upper arm left 2", "upper arm right 2",
    "lower arm left 1", "lower arm right 1", "lower arm left 2", "lower arm right 2",
    "head right", "head left",
)

LSP6_PART_NAMES = ("background", "head", "torso", "left arm", "right arm", "left leg", "right leg")

_LSP6_GROUPS = {
    1: (23, 24),
    2: (1, 2),
    3: (15, 17, 19, 21, 4),
    4: (16, 18, 20, 22, 3),
    5: (8, 10, 12, 14, 5),
    6: (7, 9, 11, 13, 6),
}

DENSEPOSE_TO_LSP6 = np.zeros(25, dtype=np.uint8)
"""(25,) lookup: DensePose part id (0..24) → LSP 6-part label (0..6)."""
for _label, _ids in _LSP6_GROUPS.items():
    DENSEPOSE_TO_LSP6[list(_ids)] = _label
DENSEPOSE_TO_LSP6.setflags(write=False)

_COARSE15 = [[0], [1, 2], [3], [4], [5], [6], [7, 9], [8, 10], [11, 13], [12, 14],
             [15, 17], [16, 18], [19, 21], [20, 22], [23, 24]]
DENSEPOSE_TO_COARSE15 = np.zeros(25, dtype=np.uint8)
"""(25,) lookup: DensePose part id → PyMAF's 15 coarse classes (front/back pairs merged)."""
for _label, _ids in enumerate(_COARSE15):
    DENSEPOSE_TO_COARSE15[_ids] = _label
DENSEPOSE_TO_COARSE15.setflags(write=False)


def densepose_to_lsp6(part_map) -> np.ndarray:
    """Map a DensePose part map (any shape, ints 0..24) to LSP 6-part labels 0..6 (uint8)."""
    part_map = np.asarray(part_map)
    if part_map.size and (part_map.min() < 0 or part_map.max() > 24):
        raise ValueError(f"part ids must be in 0..24, got range [{part_map.min()}, {part_map.max()}]")
    return DENSEPOSE_TO_LSP6[part_map.astype(np.int64)]
