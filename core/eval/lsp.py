"""SPIN's LSP segmentation protocol (fact sheet ``spin_pymaf.md`` §4.3): predicted
silhouettes and 6-part maps compared with UP-S1h annotations at the original resolution.

* Render the predicted mesh at the 224 crop with SPIN's camera (f = 5000, principal point
  at the crop centre) — or, for a full-frame camera (CLIFF), directly at the image size;
* un-crop the label map to the original image with nearest-neighbour sampling
  (:func:`uncrop_labels`; pixels outside the box are background);
* compare with the annotation PNGs (``maskname``: > 0 = foreground; ``partname``: labels
  0..6, 255 = ignore), accumulating confusion matrices over the data set
  (``core.eval.metrics.confusion_matrix`` / ``segmentation_scores``).

Part labels: our 6-part numbering is the project's own (``core.render.parts``: 1 head,
2 torso, 3 left arm, 4 right arm, 5 left leg, 6 right leg; the person's own sides). The
UP-S1h files may number their parts differently; :func:`parse_part_order` builds the
lookup ``order[our label] = annotation label`` applied to predictions before scoring
(``--lsp-part-order`` of ``python -m training.eval``; default identity).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core.geometry import get_crop_transform
from core.render.iuv import render_iuv
from core.render.parts import DENSEPOSE_TO_LSP6

__all__ = ["IGNORE_LABEL", "uncrop_labels", "parse_part_order", "render_label_maps", "read_label_image",
           "lsp_confusions"]

IGNORE_LABEL = 255


def uncrop_labels(labels: np.ndarray, center, scale: float, img_shape: Sequence[int], rot: float = 0.0) -> np.ndarray:
    """Paste a crop-space label map back into the original image, nearest neighbour.

    Args:
        labels: (h, w) integer labels over the crop of box (``center``, ``scale``, ``rot``)
            (``core.geometry.get_crop_transform``; crop pixel i has its centre at i).
        img_shape: (H, W) of the original image.
    Returns:
        (H, W) labels with ``labels``' dtype; 0 where the pixel falls outside the crop.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"uncrop_labels: expected an (h, w) label map, got shape {labels.shape}")
    src = labels.astype(np.int32) if labels.dtype not in (np.uint8, np.uint16, np.int16, np.int32) else labels
    M = get_crop_transform(center, scale, labels.shape, rot)       # original → crop
    H, W = int(img_shape[0]), int(img_shape[1])
    out = cv2.warpAffine(np.ascontiguousarray(src), M, (W, H), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(labels.dtype, copy=False)


def parse_part_order(spec: str | Sequence[int] | None) -> np.ndarray:
    """``--lsp-part-order`` → (7,) lookup ``order[our label] = annotation label``.

    Accepts 7 comma-separated ids (background first) or 6 (parts 1..6; background stays 0);
    each of 0..6 must appear once. None/"" → identity.
    """
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return np.arange(7, dtype=np.int64)
    try:
        ids = [int(s) for s in spec.split(",")] if isinstance(spec, str) else [int(s) for s in spec]
    except ValueError:
        raise ValueError(f"--lsp-part-order must be comma-separated integers, got {spec!r}") from None
    if len(ids) == 6:
        ids = [0] + ids
    if len(ids) != 7 or sorted(ids) != list(range(7)):
        raise ValueError(f"--lsp-part-order must be a permutation of 0..6 (7 ids, background first) or of 1..6 "
                         f"(6 ids), got {spec!r}")
    return np.asarray(ids, np.int64)


def render_label_maps(vertices, faces, face_part, face_uv, K, size) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and LSP 6-part maps of camera-frame meshes.

    Args:
        vertices: (B, V, 3) camera-frame vertices; faces (F, 3); face_part (F,), face_uv
            (F, 3, 2) the body's DensePose labels. K: (3, 3) or (B, 3, 3) for ``size`` (H, W).
    Returns:
        ((B, H, W) bool foreground, (B, H, W) uint8 LSP labels 0..6).
    """
    part = render_iuv(np.asarray(vertices, np.float64), faces, face_part, face_uv, K, tuple(size),
                      cull_back_faces=True).part
    return part > 0, DENSEPOSE_TO_LSP6[part]


def read_label_image(path, shape: Sequence[int] | None = None) -> np.ndarray:
    """(H, W) uint8 annotation image (grey; a colour file's first channel), checking its size."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        hint = "" if Path(path).exists() else " (no such file — check --annot-root)"
        raise FileNotFoundError(f"cannot read annotation {path}{hint}")
    if img.ndim == 3:
        img = img[..., 0]
    if shape is not None and tuple(img.shape[:2]) != (int(shape[0]), int(shape[1])):
        raise ValueError(f"annotation {path} is {img.shape[:2]} but its image is {tuple(int(s) for s in shape)}: "
                         f"annotations must have the original image's resolution")
    return img


def lsp_confusions(fg: np.ndarray, lsp: np.ndarray, mask_gt: np.ndarray | None, part_gt: np.ndarray | None,
                   part_order: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One image's (2×2 FG/BG, 7×7 parts) confusion matrices (rows GT, columns prediction).

    Args:
        fg: (H, W) bool predicted foreground; lsp: (H, W) predicted labels 0..6 (ours).
        mask_gt: (H, W) annotation (> 0 = foreground) or None; part_gt: (H, W) labels 0..6,
            255 ignored, or None. part_order: :func:`parse_part_order` lookup.
    """
    from .metrics import confusion_matrix

    c2 = c7 = None
    if mask_gt is not None:
        c2 = confusion_matrix(np.asarray(fg).astype(np.int64), (np.asarray(mask_gt) > 0).astype(np.int64), 2)
    if part_gt is not None:
        gt = np.asarray(part_gt).astype(np.int64)
        bad = (gt != IGNORE_LABEL) & ((gt < 0) | (gt > 6))
        if bad.any():
            raise ValueError(f"part annotation has labels {sorted(set(np.unique(gt[bad]).tolist()))[:5]} outside "
                             f"0..6 and {IGNORE_LABEL} (ignore): not an LSP 6-part map")
        order = np.arange(7) if part_order is None else np.asarray(part_order)
        c7 = confusion_matrix(order[np.asarray(lsp).astype(np.int64)], gt, 7, ignore=IGNORE_LABEL)
    return c2, c7
