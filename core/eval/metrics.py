"""Evaluation metrics (batched; per-sample values unless stated; units follow the inputs).

3D (fact sheet ``spin_pymaf.md`` §4.3): :func:`mpjpe`, :func:`pa_mpjpe` (after the
per-sample similarity Procrustes alignment of ``core.geometry.procrustes_align``),
:func:`pve`, :func:`pck` and :func:`auc` (MPI-INF-3DHP style: PCK at 150 mm, AUC over
0–150 mm in 5 mm steps).

2D: :func:`oks` (COCO object keypoint similarity with the COCO-17 sigmas) and
:func:`keypoint_ap` (COCO's AP over OKS thresholds 0.50:0.05:0.95 with 101-point
interpolated precision, one prediction per ground-truth person — a crop holds one person,
so matching is given).

Segmentation (SPIN's LSP protocol): :func:`confusion_matrix` accumulated over a data set,
then :func:`segmentation_scores` (pixel accuracy and mean F1 over classes: 2 for FG/BG, 7
for the 6 LSP parts + background; label 255 ignored).

DensePose-style (:func:`iuv_scores`), on ground-truth foreground pixels: part accuracy over
the 24 parts, UV error (mean Euclidean (U, V) distance where the part is right), and a
**point similarity** in the spirit of DensePose's GPS: each pixel's (part, U, V) is mapped
to a point on the body's *rest* (T-pose, mean shape) surface (:class:`SurfaceLookup`) and
``exp(−d²/(2κ²))`` is averaged over GT-foreground pixels (0 where the prediction is
background), κ = 0.255 as DensePose. ``d`` is the Euclidean distance between the two surface
points in metres, not DensePose's geodesic distance: the two agree for nearby points (which
is what the exponential weights), and Euclidean underestimates the distance between points
on different limbs that are close in the T-pose (e.g. a hand and the hip), so the score is a
slightly generous GPS. ``psm = sqrt(ps · mask IoU)`` mirrors GPSm.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.geometry import procrustes_align

__all__ = ["COCO_SIGMAS", "mpjpe", "pa_mpjpe", "pve", "pck", "auc", "oks", "keypoint_ap", "confusion_matrix",
           "segmentation_scores", "SurfaceLookup", "iuv_scores", "DENSEPOSE_KAPPA"]

COCO_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87,
                        0.87, 0.89, 0.89]) / 10.0
"""Per-keypoint OKS constants of COCO-17 (pycocotools ``COCOeval``)."""
DENSEPOSE_KAPPA = 0.255


def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(dtype)


def _check_pair(pred, gt, name):
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"{name}: pred and gt must both be (B, N, D), got {tuple(pred.shape)} and {tuple(gt.shape)}")


def mpjpe(pred, gt, mask=None) -> torch.Tensor:
    """Mean per-joint position error.

    Args:
        pred, gt: (B, J, 3) (already root-centred as the protocol requires). mask: (B, J)
            bool/0-1, joints that count (default all).
    Returns:
        (B,) mean Euclidean distance over the counted joints (NaN for a sample with none).
    """
    pred, gt = _t(pred), _t(gt)
    _check_pair(pred, gt, "mpjpe")
    d = (pred - gt).norm(dim=-1)
    if mask is None:
        return d.mean(1)
    m = _t(mask)
    return (d * m).sum(1) / m.sum(1)


def pa_mpjpe(pred, gt, mask=None) -> torch.Tensor:
    """MPJPE after aligning each prediction to its ground truth with the best similarity
    transform (scale, rotation, translation) fitted on the counted joints.

    Args/Returns: as :func:`mpjpe`.
    """
    pred, gt = _t(pred), _t(gt)
    _check_pair(pred, gt, "pa_mpjpe")
    if mask is None:
        return mpjpe(procrustes_align(pred, gt), gt)
    m = _t(mask).bool()
    out = torch.empty(pred.shape[0], dtype=pred.dtype)
    for b in range(pred.shape[0]):
        sel = m[b]
        if sel.sum() < 3:
            out[b] = float("nan")
            continue
        aligned = procrustes_align(pred[b:b + 1, sel], gt[b:b + 1, sel])
        out[b] = (aligned - gt[b:b + 1, sel]).norm(dim=-1).mean()
    return out


def pve(pred_vertices, gt_vertices) -> torch.Tensor:
    """Per-vertex error: (B, V, 3) × 2 → (B,) mean Euclidean distance (no alignment, as
    PyMAF's evaluation)."""
    pred, gt = _t(pred_vertices), _t(gt_vertices)
    _check_pair(pred, gt, "pve")
    return (pred - gt).norm(dim=-1).mean(1)


def pck(pred, gt, threshold: float, mask=None) -> torch.Tensor:
    """Percentage of correct keypoints: (B, J, D) × 2 → (B,) fraction of counted joints with
    error < ``threshold`` (same units; e.g. 0.15 m for MPI-INF-3DHP's 3D PCK)."""
    pred, gt = _t(pred), _t(gt)
    _check_pair(pred, gt, "pck")
    ok = ((pred - gt).norm(dim=-1) < threshold).to(pred.dtype)
    if mask is None:
        return ok.mean(1)
    m = _t(mask)
    return (ok * m).sum(1) / m.sum(1)


def auc(pred, gt, thresholds=None, mask=None) -> torch.Tensor:
    """Area under the PCK curve: mean PCK over ``thresholds`` (default 0–0.15 in 31 steps,
    MPI-INF-3DHP's 0–150 mm by 5 mm). Returns (B,)."""
    thresholds = np.linspace(0.0, 0.15, 31) if thresholds is None else np.asarray(thresholds)
    return torch.stack([pck(pred, gt, float(t), mask) for t in thresholds], 0).mean(0)


# ----------------------------------------------------------------------------- 2D keypoints
def oks(pred, gt, areas, sigmas=COCO_SIGMAS) -> np.ndarray:
    """COCO object keypoint similarity.

    Args:
        pred: (N, K, 2) predicted pixels. gt: (N, K, 3) GT pixels + visibility (> 0 = labelled).
        areas: (N,) object areas in pixels² (COCO: segment area).
        sigmas: (K,) per-keypoint constants (COCO-17 by default).
    Returns:
        (N,) ``Σ_vis exp(−d²/(2·s²·k²)) / #vis`` with ``s² = area`` and ``k = 2σ``
        (pycocotools' ``(2σ)²·2·area``); NaN for a person without labelled keypoints.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    areas = np.asarray(areas, np.float64).reshape(-1)
    sig = np.asarray(sigmas, np.float64)
    if pred.shape[:2] != gt.shape[:2] or gt.shape[-1] != 3 or len(sig) != gt.shape[1]:
        raise ValueError(f"oks: pred (N, K, 2), gt (N, K, 3) and sigmas (K,) must agree; got {pred.shape}, "
                         f"{gt.shape}, {sig.shape}")
    d2 = ((pred[..., :2] - gt[..., :2]) ** 2).sum(-1)
    var = (2.0 * sig) ** 2
    e = d2 / (var[None] * (areas[:, None] + np.spacing(1)) * 2.0)
    vis = gt[..., 2] > 0
    n = vis.sum(1)
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (np.exp(-e) * vis).sum(1) / n, np.nan)


def keypoint_ap(oks_values, scores=None, thresholds=None) -> dict:
    """COCO keypoint AP with one prediction per GT person.

    Args:
        oks_values: (N,) OKS of each person's prediction (NaN = no labelled keypoints:
            ignored, as COCO ignores people with num_keypoints = 0).
        scores: (N,) prediction confidences (default all 1: ties keep the input order).
        thresholds: OKS thresholds (default 0.50:0.05:0.95).
    Returns:
        {"AP": mean over thresholds, "AP50", "AP75", "per_threshold": {t: AP_t}}.
        AP_t: predictions sorted by score; precision/recall accumulated; precision made
        monotone from the right; averaged at the 101 recall points 0:0.01:1 (0 beyond the
        largest recall reached).
    """
    o = np.asarray(oks_values, np.float64).reshape(-1)
    s = np.ones_like(o) if scores is None else np.asarray(scores, np.float64).reshape(-1)
    keep = np.isfinite(o)
    o, s = o[keep], s[keep]
    ts = np.linspace(0.5, 0.95, 10) if thresholds is None else np.asarray(thresholds, np.float64)
    n_gt = len(o)
    recall_points = np.linspace(0.0, 1.0, 101)
    per = {}
    order = np.argsort(-s, kind="mergesort")
    for t in ts:
        if n_gt == 0:
            per[float(t)] = float("nan")
            continue
        tp = (o[order] >= t).astype(np.float64)
        ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
        recall = ctp / n_gt
        precision = ctp / np.maximum(ctp + cfp, np.spacing(1))
        for i in range(len(precision) - 2, -1, -1):
            precision[i] = max(precision[i], precision[i + 1])
        idx = np.searchsorted(recall, recall_points, side="left")
        q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
        per[float(t)] = float(q.mean())
    vals = np.array(list(per.values()))

    def at(x):
        return next((v for k, v in per.items() if abs(k - x) < 1e-9), float("nan"))

    return {"AP": float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan"),
            "AP50": at(0.5), "AP75": at(0.75), "per_threshold": per}


# ----------------------------------------------------------------------------- segmentation
def confusion_matrix(pred, gt, num_classes: int, ignore: int = 255) -> np.ndarray:
    """(C, C) counts, rows = GT class, columns = predicted class, over all pixels of
    ``pred``/``gt`` (any matching shapes, ints); GT ``ignore`` pixels skipped."""
    pred, gt = np.asarray(pred).reshape(-1).astype(np.int64), np.asarray(gt).reshape(-1).astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"confusion_matrix: pred and gt sizes differ ({pred.size} vs {gt.size})")
    keep = gt != ignore
    pred, gt = pred[keep], gt[keep]
    if gt.size and (gt.max() >= num_classes or gt.min() < 0 or pred.max() >= num_classes or pred.min() < 0):
        raise ValueError(f"confusion_matrix: labels must be in [0, {num_classes}) (or {ignore} in gt)")
    return np.bincount(gt * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_scores(conf: np.ndarray) -> dict:
    """Pixel accuracy and F1 per class (``2tp / (2tp + fp + fn)``) from a confusion matrix;
    ``mean_f1`` averages over classes that occur in GT or prediction."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), np.nan)
    total = conf.sum()
    return {"accuracy": float(tp.sum() / total) if total else float("nan"),
            "f1": f1.tolist(), "mean_f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")}


# ----------------------------------------------------------------------------- DensePose-style
@dataclass
class SurfaceLookup:
    """(part, U, V) → point on a body's rest surface, by nearest dense surface sample in the
    part's UV chart. Build with :meth:`from_body`."""

    trees: dict
    points: dict
    spacing: float

    @classmethod
    def from_body(cls, body, subdivisions: int = 4) -> "SurfaceLookup":
        """Sample every face at a barycentric grid (``subdivisions`` per edge) of the body's
        rest mesh (zero pose, zero betas); index each part's samples by their UV."""
        from scipy.spatial import cKDTree

        with torch.no_grad():
            v = body(betas=torch.zeros(1, body.num_betas)).vertices[0].double().cpu().numpy()
        faces = np.asarray(body.faces)
        fpart = np.asarray(body.face_part)
        fuv = np.asarray(body.face_uv, np.float64)
        k = subdivisions
        bary = np.array([(i, j, k - i - j) for i in range(k + 1) for j in range(k + 1 - i)], np.float64) / k
        xyz = np.einsum("sk,fkc->fsc", bary, v[faces])
        uv = np.einsum("sk,fkc->fsc", bary, fuv)
        trees, points = {}, {}
        for p in np.unique(fpart):
            sel = fpart == p
            trees[int(p)] = cKDTree(uv[sel].reshape(-1, 2))
            points[int(p)] = xyz[sel].reshape(-1, 3)
        edge = np.linalg.norm(v[faces[:, 0]] - v[faces[:, 1]], axis=-1).mean()
        return cls(trees, points, float(edge / k))

    def query(self, part: np.ndarray, uv: np.ndarray) -> np.ndarray:
        """(M,) parts 1..24 and (M, 2) UV → (M, 3) rest-surface points (NaN for unknown parts)."""
        part = np.asarray(part).reshape(-1)
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        out = np.full((len(part), 3), np.nan)
        for p in np.unique(part):
            if int(p) not in self.trees:
                continue
            sel = part == p
            _, idx = self.trees[int(p)].query(uv[sel])
            out[sel] = self.points[int(p)][idx]
        return out


def iuv_scores(pred_part, pred_uv, gt_part, gt_uv, surface: SurfaceLookup | None = None,
               kappa: float = DENSEPOSE_KAPPA) -> dict:
    """DensePose-style scores of one IUV prediction per image (see module docstring).

    Args:
        pred_part, gt_part: (N, H, W) part ids 0..24 (0 = background).
        pred_uv, gt_uv: (N, 2, H, W) (U, V).
        surface: enables the point similarity (``ps``, ``psm``).
    Returns:
        dict of (N,) arrays: ``part_accuracy`` (GT-foreground pixels with the right part),
        ``uv_error`` (mean |ΔUV| where the part is right; NaN if nowhere), ``mask_iou``,
        and with ``surface``: ``ps`` and ``psm``.
    """
    pp, gp = np.asarray(pred_part).astype(np.int64), np.asarray(gt_part).astype(np.int64)
    pu, gu = np.asarray(pred_uv, np.float64), np.asarray(gt_uv, np.float64)
    if pp.shape != gp.shape or pu.shape != gu.shape or pu.shape[:1] + pu.shape[2:] != pp.shape or pu.shape[1] != 2:
        raise ValueError(f"iuv_scores: parts (N, H, W) and UV (N, 2, H, W) must match; got {pp.shape}, {gp.shape}, "
                         f"{pu.shape}, {gu.shape}")
    N = pp.shape[0]
    out = {k: np.full(N, np.nan) for k in ("part_accuracy", "uv_error", "mask_iou")}
    if surface is not None:
        out["ps"], out["psm"] = np.full(N, np.nan), np.full(N, np.nan)
    for i in range(N):
        fg = gp[i] > 0
        pf = pp[i] > 0
        union = (fg | pf).sum()
        out["mask_iou"][i] = (fg & pf).sum() / union if union else np.nan
        if not fg.any():
            continue
        right = fg & (pp[i] == gp[i])
        out["part_accuracy"][i] = right.sum() / fg.sum()
        if right.any():
            out["uv_error"][i] = np.linalg.norm(pu[i][:, right] - gu[i][:, right], axis=0).mean()
        if surface is not None:
            both = fg & pf
            sim = np.zeros(fg.sum())
            if both.any():
                x_gt = surface.query(gp[i][both], gu[i][:, both].T)
                x_pr = surface.query(pp[i][both], pu[i][:, both].T)
                d2 = ((x_gt - x_pr) ** 2).sum(-1)
                sim[both[fg]] = np.exp(-d2 / (2 * kappa ** 2))
            out["ps"][i] = sim.mean()
            out["psm"][i] = np.sqrt(out["ps"][i] * out["mask_iou"][i])
    return out
