"""Build MeshPose's low-poly template of the open body (deterministic, ≈10 s on one core).

    python -m core.models.meshpose.build_lowpoly            # writes assets/body/open/meshpose_lowpoly.npz
    python -m core.models.meshpose.build_lowpoly --check    # rebuild and compare with the file

Parameters are :data:`core.models.meshpose.lowpoly.LOWPOLY_DEFAULTS`.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from .lowpoly import LOWPOLY_DEFAULTS, LowPolyTemplate, build_lowpoly, lowpoly_path


def same_template(a: LowPolyTemplate, b: LowPolyTemplate) -> bool:
    """True when two templates have identical vertices, faces and labels."""
    pairs = [(a.vertex_ids, b.vertex_ids), (a.faces, b.faces), (a.face_part, b.face_part),
             (a.face_uv, b.face_uv), (a.chart_uv, b.chart_uv), (a.in_chart, b.in_chart)]
    return all(x.shape == y.shape and np.array_equal(x, y) for x, y in pairs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body", default="open", help="body name (only 'open' has a committed file)")
    parser.add_argument("--out", default=None, help="output path (default assets/body/<body>/meshpose_lowpoly.npz)")
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the existing file")
    args = parser.parse_args(argv)

    from core.body import load_body

    body = load_body(args.body)
    lp = build_lowpoly(body, **LOWPOLY_DEFAULTS)
    out = args.out or lowpoly_path(args.body)
    print(json.dumps(lp.info, indent=1))
    if args.check:
        same = same_template(lp, LowPolyTemplate.load(out))
        print(f"{out}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1
    lp.save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
