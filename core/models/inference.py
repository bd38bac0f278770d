"""The inference path of a regressor: BatchNorm folded into its convolutions, channels-last.

For evaluation only — the methods (``core.methods`` "hmr", "pymaf", "cliff", "meshpose")
prepare the model they own with :func:`prepare_for_inference`; training and test-time
optimisation (EFT, Meta-HMR: BatchNorm's affine weights stay separate parameters there)
never do.

* **BatchNorm folding**: an eval-mode ``BatchNorm2d`` that directly follows a convolution is
  a per-channel affine map, so it is merged into that convolution's weight and bias
  (``torch.nn.utils.fusion.fuse_conv_bn_eval``) and replaced by ``Identity``. Pairs are
  found by structure: consecutive children of an ``nn.Sequential`` (conv, BN), and sibling
  attributes ``conv<k>`` / ``bn<k>`` (ResNet and HRNet blocks and stems, as torchvision
  names them) — each model's outputs are tested equal to the unfolded model's (≤ 1e-5).
* **channels-last** weights, so oneDNN's convolutions run in NHWC without reorders.
* gradients off for every parameter (callers run under ``torch.inference_mode``).

Measured on one core (``benchmarks/bench_models.py``): 1.04–1.27× depending on model and
batch; the convolutions themselves are near the core's arithmetic limit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "prepare_for_inference", "InferencePrep"]

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


@dataclass(frozen=True)
class InferencePrep:
    """What :func:`prepare_for_inference` did: BatchNorm layers folded, channels-last."""

    batchnorm_folded: int
    channels_last: bool

    def describe(self) -> str:
        return (f"inference path: {self.batchnorm_folded} BatchNorm layers folded into convolutions"
                f"{', channels-last' if self.channels_last else ''}")


def _fuse(conv: nn.Module, bn: nn.BatchNorm2d) -> nn.Module:
    return fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))


def _foldable(conv, bn) -> bool:
    return (isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every (convolution → BatchNorm2d) pair of ``model`` in place (see module
    docstring); the model must be in eval mode. Returns the number of pairs folded."""
    if model.training:
        raise ValueError("fold_batchnorm: put the model in eval mode first (training BatchNorm uses batch statistics)")
    n = 0
    for parent in list(model.modules()):
        kids = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(kids)
            for a, b in zip(names, names[1:]):
                if _foldable(kids[a], kids[b]):
                    setattr(parent, a, _fuse(kids[a], kids[b]))
                    setattr(parent, b, nn.Identity())
                    kids[b] = parent._modules[b]
                    n += 1
        for name, conv in kids.items():
            if name.startswith("conv") and name[4:].isdigit():
                bn_name = "bn" + name[4:]
                if _foldable(conv, kids.get(bn_name)):
                    setattr(parent, name, _fuse(conv, kids[bn_name]))
                    setattr(parent, bn_name, nn.Identity())
                    n += 1
    return n


def prepare_for_inference(model: nn.Module, channels_last: bool = True) -> InferencePrep:
    """Prepare ``model`` in place for evaluation: eval mode, BatchNorm folded, channels-last
    weights, no gradients. Records the result as ``model.inference_prep`` and returns it.
    Idempotent (a second call folds nothing more)."""
    model.eval()
    n = fold_batchnorm(model)
    prior = getattr(model, "inference_prep", None)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    prep = InferencePrep(n + (prior.batchnorm_folded if prior else 0), channels_last)
    model.inference_prep = prep
    return prep
