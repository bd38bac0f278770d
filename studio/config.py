"""Studio configuration: what the operator (not the web visitor) decides.

File-system paths (the SMPL folder, checkpoints, a trace to open) only come from here —
the command line or Python — never from the web UI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .images import DEFAULT_MAX_SIDE

__all__ = ["StudioConfig", "parse_checkpoint_args"]


@dataclass
class StudioConfig:
    """Settings of one studio server / window.

    Attributes:
        smpl_dir: SPIN/PyMAF-style data folder with the user's SMPL files (opt-in body);
            None → the embedded open body.
        checkpoints: method name → checkpoint path (passed to the method's builder as
            ``checkpoint=``).
        method_options: method name → extra builder keyword arguments.
        methods: offer only these registry methods (None → all that can run).
        host, port, share: web server settings (``share`` makes a public gradio.live link).
        trace_path: a saved trace to open at start.
        max_side: long side of the working image (uploads are downscaled to it).
        preview_iterations: ``num_iters`` of the quick first preview of iterative methods
            (0 = no preview run).
        default_iterations: ``num_iters`` offered by default for iterative methods (200: the
            length of SMPLify's last stage, as the CLI uses; from the T-posed mean body 40
            iterations leave e.g. a handstand ~39 px off its keypoints, 200 reach ~5 px).
        max_prerender_steps: at most this many steps of a trace are pre-rendered in the
            background (others render on demand, then stay cached).
        examples_dir: where the example photos are written (None → a temp folder).
        api_workers: ``/reconstruct`` requests computed at the same time (the API's fair
            queue, :mod:`studio.fairqueue`).
        api_max_pending: requests one client may have waiting; more are refused at once.
        trust_forwarded_for: identify API callers by the first ``X-Forwarded-For`` address
            (only behind a reverse proxy that sets it, e.g. a Hugging Face Space; elsewhere
            a caller could write any address there).
    """

    smpl_dir: Optional[Path] = None
    checkpoints: dict[str, Path] = field(default_factory=dict)
    method_options: dict[str, dict] = field(default_factory=dict)
    methods: Optional[list[str]] = None
    host: str = "127.0.0.1"
    port: Optional[int] = None
    share: bool = False
    trace_path: Optional[Path] = None
    max_side: int = DEFAULT_MAX_SIDE
    preview_iterations: int = 8
    default_iterations: int = 200
    max_prerender_steps: int = 120
    examples_dir: Optional[Path] = None
    api_workers: int = 2
    api_max_pending: int = 4
    trust_forwarded_for: bool = False

    def __post_init__(self) -> None:
        if self.smpl_dir is not None:
            self.smpl_dir = Path(self.smpl_dir)
            if not self.smpl_dir.is_dir():
                raise ValueError(f"--smpl-dir {self.smpl_dir} is not a folder; point it to a SPIN/PyMAF-style "
                                 f"data folder holding SMPL_NEUTRAL.pkl (or leave it out for the open body)")
        self.checkpoints = {str(k): Path(v) for k, v in self.checkpoints.items()}
        for name, path in self.checkpoints.items():
            if not path.is_file():
                raise ValueError(f"--checkpoint {name}={path}: no such file")
        if self.trace_path is not None:
            self.trace_path = Path(self.trace_path)
            if not self.trace_path.is_file():
                raise ValueError(f"--trace {self.trace_path}: no such file")
        if self.max_side < 256:
            raise ValueError(f"max_side must be >= 256 px, got {self.max_side}")
        if self.preview_iterations < 0 or self.default_iterations < 1:
            raise ValueError("preview_iterations must be >= 0 and default_iterations >= 1")
        if self.examples_dir is not None:
            self.examples_dir = Path(self.examples_dir)
        if self.api_workers < 1 or self.api_max_pending < 1:
            raise ValueError("api_workers and api_max_pending must be >= 1")

    @property
    def body(self) -> str:
        """"smpl" when an SMPL folder was given, else "open"."""
        return "smpl" if self.smpl_dir is not None else "open"


def parse_checkpoint_args(items: list[str]) -> dict[str, Path]:
    """``["pymaf=/path/a.pt", "hmr=b.safetensors"]`` → {name: Path}.

    Raises:
        ValueError: an item without ``=``, an empty name or path, or a repeated name.
    """
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"--checkpoint expects NAME=PATH (e.g. pymaf=data/PyMAF_model_checkpoint.pt), "
                             f"got {item!r}")
        if name in out:
            raise ValueError(f"--checkpoint {name} given twice")
        out[name] = Path(os.path.expanduser(path))
    return out
