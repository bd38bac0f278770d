"""A gallery of the shipped weights at work, for the README (``docs/gallery_weights.png``).

Rows: skimage's astronaut (a real photo that ships with a dependency; the photos under
``../shared/images`` are never committed) and held-out synthetic open-body renders (a seed
no shipped model was trained on). Columns per row: the crop, then for each method its final
mesh on the crop and from the side; methods with maps add them (PyMAF: its predicted IUV,
the IUV rendered from its own mesh).

    python benchmarks/weights_gallery.py docs/gallery_weights.png [--methods hmr pymaf] [--synthetic 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TILE = 224


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.ascontiguousarray(img.copy())
    cv2.rectangle(out, (0, 0), (TILE, 18), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 20, 20), 1, cv2.LINE_AA)
    return out


def _tile(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_NEAREST if img.shape[0] < TILE else cv2.INTER_AREA)


def method_tiles(name: str, trace, faces) -> list[np.ndarray]:
    from core.render import iuv_to_rgb, render_overlay, render_view, spin_intrinsics

    K = spin_intrinsics(5000.0, 224)
    final = trace.final
    tiles = [_label(render_overlay(trace.crop, final.vertices, faces, K), f"{name}: mesh"),
             _label(render_view(final.vertices, faces, K, (224, 224), view="side"), f"{name}: side")]
    iuv = final.maps.get("iuv")
    if iuv is not None:
        part, u, v = iuv[..., 0].round().astype(np.int64), iuv[..., 1], iuv[..., 2]
        tiles.append(_label(_tile(iuv_to_rgb(part, u, v, mode="part")), f"{name}: predicted I"))
        tiles.append(_label(_tile(iuv_to_rgb(part, u, v, mode="u")), f"{name}: predicted U"))
    return tiles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--methods", nargs="+", default=["hmr"])
    ap.add_argument("--synthetic", type=int, default=3, help="synthetic rows")
    ap.add_argument("--seed", type=int, default=424242)
    args = ap.parse_args(argv)
    from skimage import data

    from core.body import load_body
    from core.data.synthetic import SyntheticConfig, SyntheticGenerator
    from core.detect import crop_person, detect_people
    from core.methods import MethodInputs, create_method

    body = load_body("open")
    faces = np.asarray(body.faces)
    methods = {m: create_method(m) for m in args.methods}
    inputs = []
    photo = data.astronaut()
    people = detect_people(photo, max_people=1)
    if people:
        pc = crop_person(photo, people[0])
        inputs.append(("astronaut (photo)", MethodInputs(image=photo, crop=pc.image, center=pc.center,
                                                         scale=pc.scale, keypoints=pc.keypoints,
                                                         keypoints_full=pc.keypoints_image)))
    syn = SyntheticGenerator(body, SyntheticConfig()).generate(np.random.default_rng([args.seed, 0]), args.synthetic)
    for i in range(args.synthetic):
        crop = syn["image"][i]
        inputs.append((f"synthetic {i}", MethodInputs(image=crop, crop=crop, center=(112.0, 112.0), scale=224 / 200,
                                                      keypoints=syn["keypoints"][i], keypoints_full=syn["keypoints"][i])))
    rows = []
    for label, inp in inputs:
        row = [_label(_tile(inp.crop), label)]
        for name, method in methods.items():
            with torch.no_grad():
                row += method_tiles(name, method.run(inp), faces)
        rows.append(np.concatenate(row, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(args.out, sheet.shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
