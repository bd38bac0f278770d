"""Rendering must never fail inference: a guard for the front ends."""
from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

__all__ = ["placeholder_image", "safe_render"]

logger = logging.getLogger(__name__)


def placeholder_image(shape: Sequence[int] = (224, 224, 3), message: str = "render failed") -> np.ndarray:
    """Grey uint8 image of ``shape`` ((H, W) or (H, W, C)) with a short message written in it."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = shape + (3,)
    if len(shape) != 3 or min(shape) <= 0:
        raise ValueError(f"placeholder shape must be (H, W) or (H, W, C), got {shape}")
    H, W, C = shape
    img = np.full((H, W, 3), 128, np.uint8)
    scale = max(0.3, min(W, H) / 500.0)
    y = max(12, int(H * 0.15))
    line_h = int(22 * scale) + 4
    max_chars = max(8, int(W / (11 * scale)))
    words, lines, cur = str(message).split(), [], ""
    for word in words:
        if len(cur) + len(word) + 1 > max_chars and cur:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    if cur:
        lines.append(cur)
    for line in lines[: max(1, (H - y) // line_h)]:
        cv2.putText(img, line[:max_chars], (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += line_h
    if C == 1:
        return img[..., :1]
    if C == 4:
        return np.concatenate([img, np.full((H, W, 1), 255, np.uint8)], axis=-1)
    if C != 3:
        raise ValueError(f"placeholder channels must be 1, 3 or 4, got {C}")
    return img


def safe_render(fn: Callable, *args, fallback_shape: Sequence[int] = (224, 224, 3),
                message: Optional[str] = None, **kwargs) -> np.ndarray:
    """Call a rendering function; on any exception log it and return a grey placeholder.

    Args:
        fn: the rendering callable (e.g. :func:`core.render.render_overlay`).
        *args, **kwargs: passed to ``fn``.
        fallback_shape: placeholder shape (H, W[, C]) — use the expected output's shape.
        message: text for the placeholder (default: "render failed: <ExceptionType>: <text>").
    Returns:
        ``fn(*args, **kwargs)``, or the placeholder image if it raised.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the point is to catch everything
        name = getattr(fn, "__name__", repr(fn))
        logger.exception("rendering with %s failed; returning a placeholder", name)
        text = message if message is not None else f"render failed: {type(exc).__name__}: {exc}"
        return placeholder_image(fallback_shape, text[:200])
