"""Keep a body model next to a network without putting it in the network's state dict."""
from __future__ import annotations

import copy

from torch import nn

__all__ = ["BodyHolder"]


class BodyHolder(nn.Module):
    """Mixin: `self.body` is a plain attribute (not a submodule, so official checkpoints
    keep their exact keys), yet `.to()/.cuda()/.double()` on the network also apply to it.

    Bodies from ``core.body.load_body`` are cached and shared, so a conversion that would
    change the body's tensors gives this network its own converted copy instead of
    modifying the shared one.
    """

    def _set_body(self, body) -> None:
        object.__setattr__(self, "body", body)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        body = self.__dict__.get("body")
        if isinstance(body, nn.Module):
            probe = next((b for b in body.buffers() if b.is_floating_point()), None)
            if probe is not None and fn(probe) is not probe:
                object.__setattr__(self, "body", copy.deepcopy(body)._apply(fn))
        return self
