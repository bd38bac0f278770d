"""``python -m studio``: the web studio, or the desktop 3D window with ``--desktop``.

Examples::

    python -m studio                                   # web UI on http://127.0.0.1:7860
    python -m studio --port 8080 --host 0.0.0.0        # reachable from the network
    python -m studio --smpl-dir data/ --checkpoint pymaf=data/PyMAF_model_checkpoint.pt
    python -m studio --trace run.npz                   # open a saved run in the web UI
    python -m studio --desktop --trace run.npz         # the same run in an Open3D window
    python -m studio --desktop --image photo.jpg --method smplify
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .config import StudioConfig, parse_checkpoint_args

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m studio",
        description="HMR Studio: watch human mesh recovery methods work step by step (web UI, or an Open3D "
                    "desktop window with --desktop).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Visitors of the web UI can only upload images, OpenPose JSON and trace .npz files; "
               "folders and checkpoints are set here.")
    p.add_argument("--smpl-dir", type=Path, metavar="DIR",
                   help="SPIN/PyMAF-style data folder with your SMPL files (default: the embedded open body)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="weights for a method, e.g. pymaf=data/PyMAF_model_checkpoint.pt (repeatable)")
    p.add_argument("--methods", default=None, metavar="A,B",
                   help="offer only these methods (comma-separated registry names; default: all that can run)")
    p.add_argument("--port", type=int, default=None, help="web server port (default: 7860 or the next free one)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    p.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    p.add_argument("--desktop", action="store_true", help="open the Open3D desktop window instead of the web UI")
    p.add_argument("--trace", type=Path, metavar="FILE", help="open a saved trace (.npz)")
    p.add_argument("--image", type=Path, metavar="FILE",
                   help="with --desktop: run --method on this photo (largest person) and show it")
    p.add_argument("--method", default="smplify", help="with --desktop --image: the method to run (default smplify)")
    p.add_argument("--iterations", type=int, default=None, help="num_iters for optimisation methods (the web UI default; and --desktop --image)")
    p.add_argument("--max-side", type=int, default=2048, help="downscale photos to this long side (pixels)")
    return p


def _desktop(args, config: StudioConfig, runner=None) -> int:
    from core.trace import Trace

    from .desktop import run_desktop, window_unavailable_reason

    reason = window_unavailable_reason()     # before any work: one line instead of a hang or an abort
    if reason:
        print(f"error: cannot open the 3D window: {reason}", file=sys.stderr)
        return 2

    if args.trace is not None:
        trace = Trace.load(args.trace)
    elif args.image is not None:
        from .images import load_image
        from .pipeline import detect, person_inputs

        loaded = load_image(args.image, max_side=config.max_side)
        det = detect(loaded.rgb)
        if not det.people:
            print(det.message, file=sys.stderr)
            return 2
        inputs, _ = person_inputs(loaded.rgb, det.people[0])
        overrides = {"num_iters": args.iterations} if args.iterations else {}
        trace = runner.run(args.method, inputs,
                                         progress=lambda f, m: print(f"\r{m} {f:4.0%}", end="", flush=True),
                                         **overrides)
        print()
    else:
        print("--desktop needs --trace FILE or --image FILE", file=sys.stderr)
        return 2
    try:
        run_desktop(trace)
    except RuntimeError as e:   # the display went away after the first check, or Open3D could not start
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = StudioConfig(smpl_dir=args.smpl_dir, checkpoints=parse_checkpoint_args(args.checkpoint),
                              host=args.host, port=args.port, share=args.share,
                              trace_path=args.trace if not args.desktop else None, max_side=args.max_side,
                              methods=[m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
                              else None)
        if args.iterations:
            config.default_iterations = args.iterations
        if config.methods is not None:
            from .pipeline import method_choices

            method_choices(config)  # unknown names → ValueError now, not in the browser
        runner = None
        if not (args.desktop and args.trace is not None):     # files that will be used: opened and checked now
            from .pipeline import check_files

            runner = check_files(config)                       # its built methods serve the first runs
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.desktop:
        return _desktop(args, config, runner)
    from .app import launch_app

    launch_app(config, runner=runner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
