"""Trainers (one LightningModule per method), configs, the CLI and evaluation.

    python -m training hmr|spin|pymaf|meta-hmr|meshpose --config cfg.yaml --data synthetic:DIR
    python -m training.eval --checkpoint runs/hmr/final.safetensors --data synthetic:DIR --out results/

Modules: :mod:`training.config` (defaults, YAML/JSON, overrides), :mod:`training.data`
(datasets from sources, DataModule with a resumable sampler), :mod:`training.losses`,
:mod:`training.targets`, :mod:`training.base` (shared LightningModule), one module per
method (:mod:`training.hmr`, :mod:`training.spin`, :mod:`training.pymaf`,
:mod:`training.meta_hmr`, :mod:`training.meshpose`), :mod:`training.callbacks` (panels,
export), :mod:`training.visualize`, :mod:`training.cli`, :mod:`training.eval`.
``training.meshpose_upsampler`` trains MeshPose's upsampler on its own.
"""
