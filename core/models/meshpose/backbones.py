"""MeshPose's feature extractors: a (B, 256, H/4, W/4) map from a (B, 3, H, W) crop.

Built on ``core.models.backbones`` (the trunks keep their reference parameter names under
``trunk.``, so ImageNet/pose-pretrained state dicts load into ``model.backbone.trunk``):

- **HRNet-W32/W48** (supplementary §3.1): the last stage-4 module's branch outputs are each
  projected to 256 channels (1×1 conv + BN), upsampled (nearest, as HRNet's own fusion)
  to stride 4 and summed (+ ReLU), instead of HRNet's 32-channel fusion. The last module's
  own fusion layers are removed (they would be unused).
- **BlazePose GHUM** (project variant, pretrained on real photos; see
  ``core.models.backbones.blazepose``): its pyramid (strides 4, 8, 16, 32 of the 256 input
  the crop is resized to) is fused like HRNet's branches — each map projected to 256
  channels (1×1 conv + BN), bilinearly up-sampled to stride 4 (64², i.e. 224/64 = 3.5 crop
  pixels per cell for a 224 crop), summed, ReLU.
- **ResNet-50 / MobileNetV2** (supplementary §3.1): the last stage is dilated (stride 16
  instead of 32, torchvision's ``replace_stride_with_dilation`` convention: the first block
  of the stage keeps dilation 1 without stride, the others get dilation 2), then a light
  decoder of depthwise-separable convolutions with skip connections from the stride-8 and
  stride-4 stages brings the map to stride 4.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.models.backbones import blazepose_ghum, hrnet_w32, hrnet_w48, mobilenet_v2, resnet50

__all__ = ["MESHPOSE_BACKBONES", "create_meshpose_backbone", "HRNetFused", "BlazePoseFused", "DilatedResNet50",
           "DilatedMobileNetV2", "SeparableSkipDecoder", "SeparableConv"]

FEATURE_CHANNELS = 256


class SeparableConv(nn.Sequential):
    """3×3 depthwise conv + BN + ReLU, then 1×1 pointwise conv + BN + ReLU."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, 1, 1, groups=in_ch, bias=False), nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def _conv1x1_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class SeparableSkipDecoder(nn.Module):
    """Stride 16 → 8 → 4 with skips: at each step, bilinear ×2, concatenate the skip
    (projected to ``skip_channels`` by 1×1 conv) and mix with two separable convs.

    Args:
        deep_channels: channels of the stride-16 map; skip_in: channels of the (stride-8,
            stride-4) maps; out_channels: output channels (256).
    """

    def __init__(self, deep_channels: int, skip_in: tuple[int, int], out_channels: int = FEATURE_CHANNELS,
                 skip_channels: int = 64):
        super().__init__()
        self.reduce = _conv1x1_bn_relu(deep_channels, out_channels)
        self.skip_proj = nn.ModuleList(_conv1x1_bn_relu(c, skip_channels) for c in skip_in)
        self.mix = nn.ModuleList(
            nn.Sequential(SeparableConv(out_channels + skip_channels, out_channels),
                          SeparableConv(out_channels, out_channels)) for _ in skip_in)
        self.out_channels = out_channels

    def forward(self, deep: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """deep (B, C, H/16, W/16), skips [(B, c8, H/8, W/8), (B, c4, H/4, W/4)] → (B, out, H/4, W/4)."""
        x = self.reduce(deep)
        for proj, mix, skip in zip(self.skip_proj, self.mix, skips):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = mix(torch.cat([x, proj(skip)], dim=1))
        return x


class HRNetFused(nn.Module):
    """HRNet trunk with a 256-channel multi-resolution fusion at stride 4 (see module docstring)."""

    def __init__(self, width: int = 32, out_channels: int = FEATURE_CHANNELS):
        super().__init__()
        if width not in (32, 48):
            raise ValueError(f"HRNet width must be 32 or 48, got {width}")
        self.trunk = (hrnet_w32 if width == 32 else hrnet_w48)(multi_scale_output=True)
        last = self.trunk.stage4[-1]
        last.fuse_layers = None            # its branches' outputs go to our fusion instead
        self.fuse = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            for c in last.out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 256, H/4, W/4)."""
        branches = self.trunk.forward_branches(x)
        size = branches[0].shape[-2:]
        y = self.fuse[0](branches[0])
        for proj, b in zip(self.fuse[1:], branches[1:]):
            y = y + F.interpolate(proj(b), size=size, mode="nearest")
        return self.relu(y)


def _dilate_resnet_stage(stage: nn.Sequential, dilation: int = 2) -> None:
    """Remove the stride of a ResNet stage and dilate its later 3×3 convs (in place)."""
    for i, block in enumerate(stage):
        if i == 0:
            block.conv2.stride = (1, 1)
            if block.downsample is not None:
                block.downsample[0].stride = (1, 1)
        else:
            block.conv2.dilation = (dilation, dilation)
            block.conv2.padding = (dilation, dilation)


class DilatedResNet50(nn.Module):
    """ResNet-50 with a dilated layer4 (stride 16) and the separable skip decoder."""

    def __init__(self, out_channels: int = FEATURE_CHANNELS):
        super().__init__()
        self.trunk = resnet50()
        _dilate_resnet_stage(self.trunk.layer4)
        self.decoder = SeparableSkipDecoder(self.trunk.out_channels, (512, 256), out_channels)
        self.out_channels = out_channels
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 256, H/4, W/4)."""
        t = self.trunk
        x = t.maxpool(t.relu(t.bn1(t.conv1(x))))
        c4 = t.layer1(x)
        c8 = t.layer2(c4)
        c16 = t.layer4(t.layer3(c8))
        return self.decoder(c16, [c8, c4])


def _dilate_mobilenet(features: nn.Sequential, first: int, dilation: int = 2) -> None:
    """Remove the stride of inverted-residual block ``first`` and dilate the depthwise convs
    of the blocks after it (in place)."""
    for i in range(first, len(features)):
        block = features[i]
        if not hasattr(block, "conv"):
            continue
        for m in block.conv.modules():
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.kernel_size == (3, 3):
                if i == first:
                    m.stride = (1, 1)
                else:
                    m.dilation = (dilation, dilation)
                    m.padding = (dilation, dilation)


class DilatedMobileNetV2(nn.Module):
    """MobileNetV2 with its stride-32 stage dilated (stride 16) and the separable skip decoder.

    Feature taps (torchvision indices): ``features[3]`` stride 4 (24 ch), ``features[6]``
    stride 8 (32 ch), ``features[18]`` stride 16 after dilation (1280 ch)."""

    STRIDE32_BLOCK = 14   # first block of the 160-channel stage (stride 2 in the original)

    def __init__(self, out_channels: int = FEATURE_CHANNELS):
        super().__init__()
        self.trunk = mobilenet_v2()
        _dilate_mobilenet(self.trunk.features, self.STRIDE32_BLOCK)
        self.decoder = SeparableSkipDecoder(self.trunk.out_channels, (32, 24), out_channels)
        self.out_channels = out_channels
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 256, H/4, W/4)."""
        f = self.trunk.features
        c4 = f[:4](x)
        c8 = f[4:7](c4)
        c16 = f[7:](c8)
        return self.decoder(c16, [c8, c4])


class BlazePoseFused(nn.Module):
    """BlazePose's pyramid fused at stride 4 of its 256 input → (B, 256, 64, 64)."""

    def __init__(self, out_channels: int = FEATURE_CHANNELS):
        super().__init__()
        self.trunk = blazepose_ghum()
        self.strides = tuple(sorted(self.trunk.pyramid_channels))
        self.proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(self.trunk.pyramid_channels[s], out_channels, 1, bias=False),
                          nn.BatchNorm2d(out_channels)) for s in self.strides)
        self.out_channels = out_channels
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 256, 64, 64) (the crop is resized to 256² by the trunk)."""
        pyramid = self.trunk.forward_pyramid(x)
        size = pyramid[self.strides[0]].shape[-2:]
        out = None
        for s, proj in zip(self.strides, self.proj):
            y = proj(pyramid[s])
            if y.shape[-2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return F.relu(out)


MESHPOSE_BACKBONES = {
    "blazepose": BlazePoseFused,
    "hrnet_w32": lambda: HRNetFused(32),
    "hrnet_w48": lambda: HRNetFused(48),
    "resnet50": DilatedResNet50,
    "mobilenet_v2": DilatedMobileNetV2,
}


def create_meshpose_backbone(name: str) -> nn.Module:
    """A stride-4, 256-channel feature extractor by name (see :data:`MESHPOSE_BACKBONES`)."""
    try:
        return MESHPOSE_BACKBONES[name]()
    except KeyError:
        raise ValueError(f"unknown MeshPose backbone {name!r}; choose one of {sorted(MESHPOSE_BACKBONES)}") from None
