"""Loss curves of a trace: one small panel per loss/metric over the steps (matplotlib, Agg).

Losses of very different magnitudes (a pixel error next to a prior term) each get their own
panel and a log scale when all values are positive, so none flattens another.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from core.trace import Trace

__all__ = ["loss_figure", "figure_to_image", "loss_table"]

MAX_PANELS = 8


def loss_figure(trace: Trace, current: Optional[int] = None, max_panels: int = MAX_PANELS,
                width_in: float = 7.0):
    """A matplotlib Figure of ``trace.loss_curves()``.

    Args:
        trace: the trace.
        current: step index to mark with a vertical line (e.g. the slider position).
        max_panels: at most this many losses (the first ones recorded).
        width_in: figure width in inches.
    Returns:
        matplotlib.figure.Figure (not attached to pyplot: safe from several threads).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = {k: v for k, v in trace.loss_curves().items() if np.isfinite(v).any()}
    names = list(curves)[:max_panels]
    n = max(1, len(names))
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(width_in, 1.9 * rows + 0.4), dpi=100, layout="constrained")
    x = np.arange(len(trace.steps))
    if not names:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "this trace records no losses", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        y = curves[name]
        ok = np.isfinite(y)
        ax.plot(x[ok], y[ok], marker="o" if ok.sum() <= 30 else None, ms=3, lw=1.6, color="#3b5bdb")
        if ok.all() and (y > 0).all() and y.max() / max(y.min(), 1e-300) > 30:
            ax.set_yscale("log")
        if current is not None and 0 <= current < len(x):
            ax.axvline(current, color="#e8590c", lw=1.2, ls="--")
        ax.set_xlim(-0.5, len(x) - 0.5)  # every panel spans all steps, so they line up
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if i >= len(names) - cols:
            ax.set_xlabel("step", fontsize=8)
    return fig


def figure_to_image(fig) -> np.ndarray:
    """Render a Figure to an (H, W, 3) uint8 RGB array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def loss_table(trace: Trace, index: int) -> list[tuple[str, float]]:
    """(name, value) of step ``index``'s losses, in recorded order."""
    return list(trace.steps[index].losses.items())
