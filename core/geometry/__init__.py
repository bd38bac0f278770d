"""Geometry: rotations (6D, axis-angle, quaternions, matrices), cameras, crops, Procrustes.

Batched, differentiable torch functions with shapes in their docstrings; crop helpers work
on NumPy images (OpenCV) and on NumPy or torch points.
"""
from .camera import (
    FOCAL_LENGTH,
    IMG_RES,
    cliff_bbox_info,
    cliff_cam_to_full,
    default_focal,
    estimate_translation,
    perspective_projection,
    translation_to_weak_perspective,
    weak_perspective_to_translation,
)
from .crop import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    apply_affine,
    bbox_from_keypoints,
    bbox_from_xywh,
    crop_image,
    denormalize_image,
    get_crop_transform,
    invert_affine,
    normalize_image,
    points_from_crop,
    points_to_crop,
    uncrop_image,
)
from .procrustes import SimilarityTransform, compute_similarity_transform, procrustes_align
from .rotations import (
    axis_angle_to_quaternion,
    axis_angle_to_rotmat,
    quaternion_to_axis_angle,
    quaternion_to_rotmat,
    rot6d_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_quaternion,
    rotmat_to_rot6d,
    skew,
)

__all__ = [
    "FOCAL_LENGTH", "IMG_RES", "IMAGENET_MEAN", "IMAGENET_STD",
    "rot6d_to_rotmat", "rotmat_to_rot6d", "axis_angle_to_rotmat", "rotmat_to_axis_angle",
    "axis_angle_to_quaternion", "quaternion_to_axis_angle", "quaternion_to_rotmat",
    "rotmat_to_quaternion", "skew",
    "weak_perspective_to_translation", "translation_to_weak_perspective",
    "perspective_projection", "cliff_bbox_info", "cliff_cam_to_full", "estimate_translation",
    "default_focal",
    "get_crop_transform", "invert_affine", "apply_affine", "crop_image", "uncrop_image",
    "points_to_crop", "points_from_crop", "bbox_from_keypoints", "bbox_from_xywh",
    "normalize_image", "denormalize_image",
    "SimilarityTransform", "compute_similarity_transform", "procrustes_align",
]
