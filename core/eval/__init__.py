"""Evaluation metrics: MPJPE, PA-MPJPE, PVE, PCK/AUC, COCO OKS keypoint AP, LSP-style
segmentation accuracy/F1, DensePose-style IUV scores (see :mod:`core.eval.metrics`)."""
from .metrics import (COCO_SIGMAS, DENSEPOSE_KAPPA, SurfaceLookup, auc, confusion_matrix, iuv_scores, keypoint_ap,
                      mpjpe, oks, pa_mpjpe, pck, pve, segmentation_scores)

__all__ = ["COCO_SIGMAS", "DENSEPOSE_KAPPA", "SurfaceLookup", "auc", "confusion_matrix", "iuv_scores",
           "keypoint_ap", "mpjpe", "oks", "pa_mpjpe", "pck", "pve", "segmentation_scores"]
