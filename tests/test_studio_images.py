"""Uploads the studio must survive: every bad or unusual image file through ``load_image``."""
from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from studio.images import MAX_INPUT_PIXELS, ImageInputError, example_images, load_image
from tests.test_studio_support import astronaut_bytes


def _png(arr_or_img, **kw) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def test_plain_jpeg_and_path(tmp_path):
    data = astronaut_bytes()
    out = load_image(data)
    assert out.rgb.shape == (512, 512, 3) and out.rgb.dtype == np.uint8 and out.notes == [] and out.scale == 1.0
    p = tmp_path / "a.jpg"
    p.write_bytes(data)
    np.testing.assert_array_equal(load_image(p).rgb, out.rgb)


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"this is a text file, not a photo", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image"),
])
def test_unreadable_files_are_refused_with_a_message(data, match):
    with pytest.raises(ImageInputError, match=match):
        load_image(data)


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(ImageInputError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageInputError, match="empty"):
        load_image(tmp_path / "empty.jpg")


def test_truncated_jpeg_is_refused():
    data = astronaut_bytes()
    with pytest.raises(ImageInputError, match="truncated"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("size", [(1, 1), (31, 400), (400, 20)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ImageInputError, match="only"):
        load_image(_png(np.zeros((size[1], size[0], 3), np.uint8)))


def _patched_png_size(width: int, height: int, rgb: bool = False) -> bytes:
    """A small PNG whose IHDR claims another size (a decompression-bomb shaped header)."""
    data = bytearray(_png(np.zeros((8, 8, 3) if rgb else (8, 8), np.uint8)))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


def test_gigantic_headers_are_refused_before_decoding():
    with pytest.raises(ImageInputError, match="too large|megapixels"):
        load_image(_patched_png_size(20000, 20000))
    with pytest.raises(ImageInputError, match="too large|megapixels"):
        load_image(_patched_png_size(100000, 100000))  # beyond PIL's own bomb limit too
    assert 12000 * 12000 <= MAX_INPUT_PIXELS


def test_decoded_memory_is_checked_before_decoding():
    """A 12000² RGB PNG is under the pixel limit but PIL would hold it in 576 MB (4 bytes per
    pixel): refused from the header with the figure; the same size in grayscale (144 MB)
    passes that check (and fails later only because the patched file has no such data)."""
    with pytest.raises(ImageInputError, match=r"would take 549 MB of memory \(the limit is 512 MB\)"):
        load_image(_patched_png_size(12000, 12000, rgb=True))
    with pytest.raises(ImageInputError, match="truncated|decoded"):
        load_image(_patched_png_size(12000, 12000))


def test_12000_square_png_is_downscaled():
    data = _png(Image.new("L", (12000, 12000), 90), compress_level=1)
    out = load_image(data, max_side=1024)
    assert out.rgb.shape == (1024, 1024, 3)
    assert out.original_size == (12000, 12000) and out.scale == pytest.approx(1024 / 12000)
    assert abs(int(out.rgb.mean()) - 90) <= 1 and any("downscaled" in n for n in out.notes)


def test_large_jpeg_uses_reduced_decoding():
    arr = cv2.resize(np.asarray(Image.open(io.BytesIO(astronaut_bytes()))), (4000, 3000))
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=80)
    out = load_image(buf.getvalue(), max_side=800)
    assert max(out.rgb.shape[:2]) == 800 and out.original_size == (3000, 4000)


def test_16bit_grayscale_and_rgb_png(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    out = load_image(_png(Image.fromarray(ramp)))
    np.testing.assert_allclose(out.rgb[..., 0], np.round(ramp / 257.0), atol=1)
    assert (out.rgb[..., 0] == out.rgb[..., 2]).all()
    rgb16 = np.stack([ramp, ramp // 2, 65535 - ramp], axis=-1)
    p = tmp_path / "rgb16.png"
    cv2.imwrite(str(p), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    out = load_image(p)
    np.testing.assert_allclose(out.rgb.astype(float), rgb16 / 257.0, atol=1.5)


def test_rgba_is_composited_on_white():
    arr = np.zeros((64, 64, 4), np.uint8)
    arr[..., 0] = 200
    arr[:32, :, 3] = 255  # top half opaque red, bottom half fully transparent
    out = load_image(_png(arr))
    assert (out.rgb[:32, :, 0] == 200).all() and (out.rgb[40:] == 255).all()
    assert any("transparent" in n for n in out.notes)


def test_grayscale_and_palette():
    gray = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
    out = load_image(_png(gray))
    assert out.rgb.shape == (64, 64, 3) and (out.rgb[..., 1] == gray).all()
    pal = Image.fromarray(np.full((64, 64, 3), [10, 200, 30], np.uint8)).convert("P")
    np.testing.assert_array_equal(load_image(_png(pal)).rgb, np.asarray(pal.convert("RGB")))


def test_cmyk_jpeg_is_converted():
    rgb = np.asarray(Image.open(io.BytesIO(astronaut_bytes())))
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG", quality=95)
    out = load_image(buf.getvalue())
    assert out.rgb.shape == rgb.shape and any("CMYK" in n for n in out.notes)
    assert np.abs(out.rgb.astype(float) - rgb).mean() < 12


def _with_exif_orientation(arr: np.ndarray, orientation: int, fmt: str) -> bytes:
    """The encoded image of `arr` carrying EXIF orientation `orientation`."""
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, fmt, exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize("orientation, expect", [(6, "cw"), (8, "ccw"), (3, "180")])
def test_exif_orientation_is_applied(orientation, expect):
    arr = np.zeros((40, 80, 3), np.uint8)  # stored landscape 80×40
    arr[:10, :10] = [255, 0, 0]  # red marker at the stored top-left
    out = load_image(_with_exif_orientation(arr, orientation, "PNG"), min_side=8)
    red = (out.rgb[..., 0] > 200) & (out.rgb[..., 1] < 50)
    ys, xs = np.nonzero(red)
    h, w = out.rgb.shape[:2]
    if expect == "cw":  # 90° clockwise: top-left → top-right, portrait
        assert (h, w) == (80, 40) and xs.mean() > w / 2 and ys.mean() < h / 2
    elif expect == "ccw":  # top-left → bottom-left
        assert (h, w) == (80, 40) and xs.mean() < w / 2 and ys.mean() > h / 2
    else:
        assert (h, w) == (40, 80) and xs.mean() > w / 2 and ys.mean() > h / 2
    assert out.original_size == (h, w) and any("EXIF" in n for n in out.notes)


@pytest.mark.parametrize("orientation", [9, 255, 0])
def test_an_invalid_exif_orientation_is_ignored(orientation):
    """Values outside 1–8 are not orientations: the pixels stay as stored, the size is not
    swapped (scale and OpenPose keypoints were doubled before) and nothing claims a rotation."""
    out = load_image(_with_exif_orientation(np.zeros((40, 80, 3), np.uint8), orientation, "JPEG"), min_side=8)
    assert out.rgb.shape[:2] == (40, 80) and out.original_size == (40, 80) and out.scale == 1.0
    assert not any("rotated" in n for n in out.notes)
    if orientation:
        assert any("invalid EXIF orientation" in n for n in out.notes)


def test_arrays_and_float_images():
    out = load_image(np.random.default_rng(0).random((64, 64)))
    assert out.rgb.shape == (64, 64, 3)
    with pytest.raises(ImageInputError):
        load_image(np.full((64, 64, 3), np.nan))


def test_example_images_are_generated_once(tmp_path):
    paths = example_images(tmp_path)
    assert [p.name for p in paths] == ["astronaut.jpg", "two_astronauts.jpg"]
    assert load_image(paths[1]).rgb.shape == (512, 1024, 3)
    mtime = paths[0].stat().st_mtime_ns
    assert example_images(tmp_path)[0].stat().st_mtime_ns == mtime


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_bit_depth_downscaling_matches_a_float64_reference(mode):
    """Strip-wise conversion + box reduction equals converting the whole image in float64
    and averaging 3×3 blocks (the slow obvious way)."""
    rng = np.random.default_rng(0)
    raw = {"I;16": rng.integers(0, 65536, (301, 451)).astype(np.uint16),
           "I": rng.integers(-5000, 90000, (301, 451)).astype(np.int32),
           "F": rng.uniform(0, 1, (301, 451)).astype(np.float32)}[mode]
    img = Image.fromarray(raw)
    assert img.mode == mode
    out = load_image(img, max_side=150)
    a = raw.astype(np.float64)
    if mode == "I;16":
        a = a / 257.0
    elif mode == "I":
        a = (a - a.min()) * 255.0 / (a.max() - a.min())
    else:
        a = a * 255.0
    g = np.clip(np.rint(a), 0, 255)[:300, :450].reshape(100, 3, 150, 3).mean(axis=(1, 3))
    assert out.rgb.shape == (100, 150, 3)
    np.testing.assert_allclose(out.rgb[..., 1].astype(float), g, atol=1.0)


def test_a_huge_16bit_png_stays_within_memory(tmp_path):
    """A 10000² 16-bit grayscale PNG (≈0.2 MB on disk, under the pixel limit): decoded under a
    1.5 GB address-space cap with memory near PIL's own 16-bit buffer (200 MB), not the
    float64 copies (≈2.5 GB) of a whole-image conversion."""
    from tests.helpers.memory import run_capped

    a = np.zeros((10_000, 10_000), np.uint16)
    a[2000:8000, 4000:6000] = 40000
    path = tmp_path / "big16.png"
    Image.fromarray(a).save(path)
    del a
    res = run_capped("from studio.images import load_image",
                     f"r = load_image({str(path)!r}); assert r.rgb.shape == (2048, 2048, 3), r.rgb.shape; "
                     f"assert r.rgb[1024, 1024, 0] == 156, r.rgb[1024, 1024]", cap_mb=1536)
    assert res["error"] is None, res
    assert res["peak_mb"] < 400, res
