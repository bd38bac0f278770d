"""Input checks shared by the regressors: a clear error instead of a shape error deep inside."""
from __future__ import annotations

import torch

__all__ = ["validate_images"]


def validate_images(images, size: tuple[int, int], model: str) -> torch.Tensor:
    """Check a batch of network inputs.

    Args:
        images: (B, 3, H, W) float tensor, RGB, ImageNet-normalised
            (``(img/255 − mean)/std``, see ``core.geometry.normalize_image``).
        size: expected (H, W), e.g. (224, 224) for SPIN/PyMAF, (256, 192) for CLIFF.
        model: name used in the error message.
    Returns:
        `images` unchanged.
    Raises:
        ValueError / TypeError naming the expected input and the fix.
    """
    h, w = size
    expected = (f"{model} expects a float tensor of shape (B, 3, {h}, {w}): RGB crops, "
                f"ImageNet-normalised (core.geometry.normalize_image)")
    if not torch.is_tensor(images):
        raise TypeError(f"{expected}; got {type(images).__name__}")
    if not images.is_floating_point():
        hint = " — uint8 pixels must be normalised first" if images.dtype == torch.uint8 else ""
        raise ValueError(f"{expected}; got dtype {images.dtype}{hint}")
    shape = tuple(images.shape)
    if images.ndim == 3 and shape == (3, h, w):
        raise ValueError(f"{expected}; got {shape} — add the batch dimension: images[None]")
    if images.ndim == 4 and shape[1:] == (h, w, 3):
        raise ValueError(f"{expected}; got {shape} (channels last) — use images.permute(0, 3, 1, 2)")
    if images.ndim != 4 or shape[1] != 3 or shape[2:] != (h, w):
        raise ValueError(f"{expected}; got {shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{expected}; got an empty batch")
    return images
