"""HMR Studio front ends: they know Traces, not models.

Data flows one way: image → ``core.detect`` → crop → a method from ``core.methods`` →
``core.trace.Trace`` → the views here.

* ``python -m studio`` — the web studio (Gradio): :func:`studio.app.build_app`,
  :func:`studio.app.launch_app`; ``app.py`` at the repository root is the Hugging Face Space.
* ``python -m studio --desktop`` — an Open3D window: :mod:`studio.desktop`.
* Jupyter — :class:`studio.notebook.TraceInspector` (ipywidgets).

Building blocks, all pure functions of a Trace: :mod:`studio.views` (overlays, side views,
keypoints, strips), :mod:`studio.maps` (IUV, visibility, feature maps), :mod:`studio.plots`
(loss curves), :mod:`studio.export` (.glb/.obj/.npz), :mod:`studio.shading` (CPU ray-cast
shading); :mod:`studio.images` reads uploads safely; :mod:`studio.pipeline` runs the
registry; :mod:`studio.session` caches rendered steps per visitor.

Submodules are imported on use (Gradio, Open3D and ipywidgets are heavy).
"""
