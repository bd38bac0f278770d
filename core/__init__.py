"""HMR Studio core library: body models, geometry, rendering, models, fitting, detection.

`core` imports nothing from `studio` or `training`.
"""
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
