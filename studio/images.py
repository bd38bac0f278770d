"""Reading visitors' image uploads safely, and the example photos the studio ships.

Every upload goes through :func:`load_image`, which opens it with PIL and turns anything a
camera or an editor can write into an (H, W, 3) uint8 RGB array small enough to work on:

* EXIF orientation is applied (phones store portraits as rotated landscapes);
* 16-bit, grayscale, palette, RGBA/LA (composited on white), CMYK/YCbCr/LAB and float
  images are converted to 8-bit RGB;
* the pixel count is checked from the header *before* decoding (decompression bombs are
  refused), JPEGs are decoded at a reduced size directly (``Image.draft``), the memory the
  decoded image needs is checked against :data:`MAX_DECODED_BYTES` before decoding, and the
  result is downscaled so its long side is at most ``max_side``;
* empty, truncated, non-image and degenerate (smaller than ``min_side``) files raise
  :class:`ImageInputError` with a message meant for the visitor.

Example photos are generated at run time from ``skimage.data.astronaut()`` (public domain,
NASA) — no image files are shipped.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from core.utils.memory import trim_heap

__all__ = [
    "ImageInputError",
    "LoadedImage",
    "load_image",
    "MAX_INPUT_PIXELS",
    "DEFAULT_MAX_SIDE",
    "MIN_SIDE",
    "example_images",
]

MAX_INPUT_PIXELS = 180_000_000
"""Uploads with more pixels than this (≈ 13400² px) are refused before decoding."""
DEFAULT_MAX_SIDE = 2048
"""Working images are downscaled so that their long side is at most this many pixels."""
MIN_SIDE = 32
"""Images with a side shorter than this cannot show a person and are refused."""
MAX_DECODED_BYTES = 512 << 20
"""Memory PIL may need to hold a decoded upload (after JPEG's reduced-size decoding); larger
images are refused before decoding (PIL keeps RGB as 4 bytes per pixel: a 178-megapixel RGB
PNG would take 712 MB)."""
_PIL_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Image.Image]


class ImageInputError(ValueError):
    """An upload that cannot be used as a photo; the message is meant for the visitor."""


@dataclass
class LoadedImage:
    """A decoded upload.

    Attributes:
        rgb: (H, W, 3) uint8 RGB working image (EXIF-rotated, downscaled).
        original_size: (H, W) of the file after EXIF rotation, before downscaling.
        scale: working pixels per original pixel (≤ 1).
        notes: what was done to the file, one short sentence each (for the UI).
    """

    rgb: np.ndarray
    original_size: tuple[int, int]
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)


def _open(source: ImageSource) -> Image.Image:
    """Open lazily (header only) and verify we got an image."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageInputError("The uploaded file is empty (0 bytes). Please upload a photo (JPEG or PNG).")
        fp: object = io.BytesIO(data)
        name = "upload"
    else:
        path = Path(os.fspath(source))
        if not path.is_file():
            raise ImageInputError(f"No file was received ({path.name} does not exist). Please upload it again.")
        if path.stat().st_size == 0:
            raise ImageInputError(f"The file {path.name} is empty (0 bytes). Please upload a photo (JPEG or PNG).")
        fp = str(path)
        name = path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except Image.DecompressionBombError:
        raise ImageInputError(f"{name} is too large to process safely (more than "
                              f"{MAX_INPUT_PIXELS / 1e6:.0f} megapixels). Please upload a smaller photo.") from None
    except (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"{name} is not an image that can be read ({type(e).__name__}). "
                              f"Please upload a photo as JPEG, PNG or WebP.") from None
    return img


def _check_size(img: Image.Image, min_side: int) -> None:
    w, h = img.size
    if w * h > MAX_INPUT_PIXELS:
        raise ImageInputError(f"The image is {w}×{h} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
                              f"{MAX_INPUT_PIXELS / 1e6:.0f} megapixels. Please upload a smaller photo.")
    if min(w, h) < min_side:
        raise ImageInputError(f"The image is only {w}×{h} pixels; a person needs at least "
                              f"{min_side}×{min_side}. Please upload a larger photo.")


def _exif_orientation(img: Image.Image) -> int:
    """EXIF orientation 1–8; 1 when absent or unreadable; 0 when present but not a valid value."""
    try:
        value = int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - malformed EXIF must not block the photo
        return 1
    return value if 1 <= value <= 8 else 0


_HIGH_BIT_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_STRIP_PIXELS = 1 << 22
"""Pixels converted at a time when a high-bit-depth image is brought to 8 bit."""


def _to_uint8(a: np.ndarray, mode: str, lo: float, hi: float) -> np.ndarray:
    """One strip of a high-bit-depth image → uint8 (16-bit scaled by 1/257; 32-bit and float
    stretched from [lo, hi] when outside 0..255; float in 0..1 scaled by 255)."""
    a = a.astype(np.float32)
    if mode.startswith("I;16"):
        a = a * np.float32(1.0 / 257.0)
    elif hi > 255.0 or lo < 0.0:
        a = (a - np.float32(lo)) * np.float32(255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    elif mode == "F" and hi <= 1.0:
        a = a * np.float32(255.0)
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _high_bit_depth_to_l(img: Image.Image, factor: int) -> Image.Image:
    """16/32-bit or float image → 8-bit grayscale, box-downscaled by ``factor``, converted a
    strip of rows at a time (no full-size float copy: memory stays near the decoded image)."""
    w, h = img.size
    factor = max(1, factor)
    rows = max(factor, (_STRIP_PIXELS // max(w, 1)) // factor * factor)
    lo, hi = np.inf, -np.inf
    for y in range(0, h, rows):
        strip = np.asarray(img.crop((0, y, w, min(h, y + rows))))
        if not np.isfinite(strip).all():
            raise ImageInputError("The image contains invalid (NaN/inf) pixel values.")
        lo, hi = min(lo, float(strip.min())), max(hi, float(strip.max()))
    out_w, out_h = max(1, w // factor), max(1, h // factor)
    out = np.empty((out_h, out_w), np.uint8)
    for y in range(0, out_h * factor, rows):
        strip = np.asarray(img.crop((0, y, out_w * factor, min(out_h * factor, y + rows))))
        g = _to_uint8(strip, img.mode, lo, hi)
        if factor > 1:
            g = g.reshape(g.shape[0] // factor, factor, out_w, factor).mean(axis=(1, 3)).round().astype(np.uint8)
        out[y // factor:y // factor + g.shape[0]] = g
    return Image.fromarray(out)


def _to_rgb(img: Image.Image, notes: list[str], max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """Any PIL mode → 8-bit RGB (alpha composited on white, high bit depth scaled, not clipped;
    those are also box-downscaled here, towards ``max_side``, since PIL cannot reduce them)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_BIT_DEPTH:
        g = _high_bit_depth_to_l(img, max(img.size) // max_side)
        notes.append(f"converted a high-bit-depth ({mode}) image to 8-bit")
        return g.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("composited the transparent areas on white")
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("converted a CMYK image to RGB")
    elif mode in ("L", "1"):
        notes.append("grayscale image (the person detector works on it, colours will be gray)")
    return img.convert("RGB")


def _reduce(img: Image.Image, max_side: int) -> Image.Image:
    """Integer box-downscale huge images *before* colour conversion (cheaper, less memory).
    High-bit-depth images are reduced while converted (:func:`_to_rgb`)."""
    factor = max(img.size) // max_side
    if factor < 2 or img.mode in _HIGH_BIT_DEPTH:
        return img
    if img.mode == "1":
        img = img.convert("L")
    try:
        return img.reduce(factor)
    except ValueError:  # a mode without reduce: converted first, resized after
        return img


def load_image(source: ImageSource, max_side: int = DEFAULT_MAX_SIDE, min_side: int = MIN_SIDE) -> LoadedImage:
    """Decode an upload into a working RGB image.

    Args:
        source: a file path, the file's bytes, a PIL image or an array (H, W[, C]).
        max_side: long side of the working image in pixels (downscaled if larger).
        min_side: refuse images with a shorter side (cannot hold a person).
    Returns:
        :class:`LoadedImage`.
    Raises:
        ImageInputError: empty, unreadable, truncated, too large or too small input, with a
            message for the visitor.
    """
    if max_side < min_side:
        raise ValueError(f"max_side ({max_side}) must be >= min_side ({min_side})")
    notes: list[str] = []
    if isinstance(source, np.ndarray):
        from core.detect import to_rgb_uint8

        try:
            arr = to_rgb_uint8(source)
        except ValueError as e:
            raise ImageInputError(f"The image array cannot be used: {e}") from None
        img = Image.fromarray(arr)
    else:
        img = _open(source)
    _check_size(img, min_side)

    orientation = _exif_orientation(img)
    if orientation == 0:  # e.g. 9 or 255: not an orientation; the pixels are used as stored
        notes.append("ignored an invalid EXIF orientation value")
        orientation = 1
    w, h = img.size  # stored layout (before EXIF rotation)
    if img.format == "JPEG" and max(w, h) > 2 * max_side:
        # Decode at 1/2, 1/4 or 1/8 size directly: fast and memory-light for huge JPEGs.
        ratio = max_side / max(w, h)
        img.draft(img.mode, (max(1, int(w * ratio)), max(1, int(h * ratio))))
    w_dec, h_dec = img.size  # after the draft reduction
    need = w_dec * h_dec * _PIL_BYTES_PER_PIXEL.get(img.mode, 4)
    if need > MAX_DECODED_BYTES:
        raise ImageInputError(f"Decoding this {img.format or 'image'} of {w}×{h} pixels would take "
                              f"{need / 2**20:.0f} MB of memory (the limit is {MAX_DECODED_BYTES / 2**20:.0f} MB). "
                              f"Please upload it as a JPEG or at a smaller size.")
    try:
        img.load()
    except OSError as e:
        msg = str(e)
        if "truncated" in msg or "broken data stream" in msg or "image file is" in msg:
            raise ImageInputError("The image file is truncated or damaged (the upload may have been cut off). "
                                  "Please upload the complete file.") from None
        raise ImageInputError(f"The image could not be decoded ({msg}). Please upload a JPEG or PNG.") from None
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageInputError(f"The image could not be decoded ({e}). Please upload a JPEG or PNG.") from None

    if getattr(img, "n_frames", 1) > 1:
        notes.append("used the first frame of an animated/multi-page image")
    if orientation != 1:
        try:
            img = ImageOps.exif_transpose(img)
            notes.append("rotated the photo upright using its EXIF orientation")
        except Exception:  # noqa: BLE001
            notes.append("ignored an unreadable EXIF orientation")
    # original size in upright orientation (before the JPEG draft reduction)
    original = (h, w) if orientation < 5 else (w, h)

    img = _reduce(img, max_side)
    img = _to_rgb(img, notes, max_side)
    cur_w, cur_h = img.size
    if max(cur_w, cur_h) > max_side:
        ratio = max_side / max(cur_w, cur_h)
        img = img.resize((max(1, round(cur_w * ratio)), max(1, round(cur_h * ratio))), Image.Resampling.LANCZOS,
                         reducing_gap=2.0)
    rgb = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageInputError(f"Unexpected decoded image shape {rgb.shape}; please upload an RGB photo.")
    del img
    if need > 64 << 20:
        trim_heap()   # hand the decoding buffers back (glibc keeps them per thread otherwise)
    scale = rgb.shape[1] / original[1]
    if scale < 0.999:
        notes.append(f"downscaled from {original[1]}×{original[0]} to {rgb.shape[1]}×{rgb.shape[0]} pixels")
    return LoadedImage(rgb=rgb, original_size=original, scale=float(scale), notes=notes)


def example_images(folder: Union[str, os.PathLike]) -> list[Path]:
    """Write the studio's example photos into ``folder`` (created) and return their paths.

    Generated from ``skimage.data.astronaut()`` (public domain, NASA): the astronaut (one
    person) and the astronaut next to a mirrored copy (two people, to try the person picker).
    Existing files are reused.
    """
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = data.astronaut()
    out = []
    for name, arr in (("astronaut.jpg", astronaut),
                      ("two_astronauts.jpg", np.concatenate([astronaut, astronaut[:, ::-1]], axis=1))):
        path = folder / name
        if not path.is_file():
            tmp = path.with_suffix(".tmp.jpg")
            Image.fromarray(arr).save(tmp, quality=92)
            os.replace(tmp, path)
        out.append(path)
    return out
