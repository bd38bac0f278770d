"""Evaluation metrics: MPJPE, PA-MPJPE, PVE, PCK/AUC, COCO OKS keypoint AP, LSP-style
segmentation accuracy/F1, DensePose-style IUV scores (see :mod:`core.eval.metrics`); SPIN's LSP
segmentation protocol (:mod:`core.eval.lsp`)."""
from .metrics import (COCO_SIGMAS, DENSEPOSE_KAPPA, SurfaceLookup, auc, confusion_matrix, iuv_scores, keypoint_ap,
                      mpjpe, oks, pa_mpjpe, pck, pve, segmentation_scores)
from .lsp import (IGNORE_LABEL, lsp_confusions, parse_part_order, read_label_image, render_label_maps,
                  uncrop_labels)

__all__ = ["COCO_SIGMAS", "DENSEPOSE_KAPPA", "SurfaceLookup", "auc", "confusion_matrix", "iuv_scores",
           "keypoint_ap", "mpjpe", "oks", "pa_mpjpe", "pck", "pve", "segmentation_scores",
           "IGNORE_LABEL", "lsp_confusions", "parse_part_order", "read_label_image", "render_label_maps",
           "uncrop_labels"]
