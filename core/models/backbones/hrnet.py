"""HRNet-W32/W48 in the pose-HRNet module layout (as used by PARE, PyMAF-X and CLIFF).

Module names = state-dict prefixes: `conv1, bn1, conv2, bn2` (two stride-2 3×3 stem convs),
`layer1` (4 Bottlenecks, 256 channels), `transition1, stage2, transition2, stage3,
transition3, stage4`; every stage is a Sequential of `HighResolutionModule`s with
`branches.{b}.{k}` (BasicBlocks) and `fuse_layers.{i}.{j}` (1×1 conv + BN + nearest upsample
for j > i, a chain of stride-2 3×3 conv + BN (+ ReLU except the last) for j < i, absent for
j = i). Stage 4's last module keeps all four outputs (`multi_scale_output=True`) unless
asked otherwise (the plain pose-HRNet keeps only branch 0 there).

Optional head `head="cls"`: the HRNet classification head used by CLIFF's HR-W48 encoder —
`incre_modules.{b}.0` (one Bottleneck per branch to 128/256/512/1024 channels),
`downsamp_modules.{b}` (stride-2 3×3 conv with bias + BN + ReLU) and `final_layer`
(1×1 conv with bias 1024 → 2048 + BN + ReLU), i.e. a 2048-channel stride-32 map.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .resnet import BasicBlock, Bottleneck

__all__ = ["StageSpec", "hrnet_stage_specs", "HighResolutionModule", "HRNet", "hrnet_w32", "hrnet_w48"]


@dataclass(frozen=True)
class StageSpec:
    num_modules: int
    block: type[BasicBlock] | type[Bottleneck]
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)


def hrnet_stage_specs(width: int) -> tuple[StageSpec, StageSpec, StageSpec]:
    """Stages 2–4 of HRNet-W`width` (the published W32/W48 configurations)."""
    c = width
    return (
        StageSpec(1, BasicBlock, (4, 4), (c, 2 * c)),
        StageSpec(4, BasicBlock, (4, 4, 4), (c, 2 * c, 4 * c)),
        StageSpec(3, BasicBlock, (4, 4, 4, 4), (c, 2 * c, 4 * c, 8 * c)),
    )


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, relu: bool, bias: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=bias),
                               nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _make_blocks(block, in_ch: int, planes: int, count: int) -> nn.Sequential:
    downsample = None
    if in_ch != planes * block.expansion:
        downsample = nn.Sequential(nn.Conv2d(in_ch, planes * block.expansion, 1, bias=False),
                                   nn.BatchNorm2d(planes * block.expansion))
    layers = [block(in_ch, planes, 1, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, count)]
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches followed by all-to-all fusion. Input/output: list of maps, branch b
    at stride 2^b relative to branch 0, with `channels[b]` channels."""

    def __init__(self, spec: StageSpec, in_channels: list[int], multi_scale_output: bool = True):
        super().__init__()
        n = spec.num_branches
        self.num_branches = n
        self.branches = nn.ModuleList(
            _make_blocks(spec.block, in_channels[b], spec.num_channels[b], spec.num_blocks[b])
            for b in range(n))
        self.out_channels = [c * spec.block.expansion for c in spec.num_channels]
        ch = self.out_channels
        self.fuse_layers = None
        if n > 1:
            fuse = []
            for i in range(n if multi_scale_output else 1):
                row: list[nn.Module | None] = []
                for j in range(n):
                    if j > i:
                        row.append(nn.Sequential(
                            nn.Conv2d(ch[j], ch[i], 1, 1, 0, bias=False), nn.BatchNorm2d(ch[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                    elif j == i:
                        row.append(None)
                    else:
                        steps = [_conv_bn(ch[j], ch[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                        steps.append(_conv_bn(ch[j], ch[i], 3, 2, relu=False))
                        row.append(nn.Sequential(*steps))
                fuse.append(nn.ModuleList(row))
            self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j in range(self.num_branches):
                if j != i:
                    y = y + row[j](xs[j])
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet trunk (+ optional classification head).

    `forward_branches(x)`: (B,3,H,W) → [ (B, c, H/4, W/4), (B, 2c, H/8, W/8),
    (B, 4c, H/16, W/16), (B, 8c, H/32, W/32) ] (only the first when `multi_scale_output`
    is False). `forward_features(x)`: with `head="cls"` the (B, 2048, H/32, W/32) map,
    otherwise the highest-resolution branch. `forward(x)`: globally pooled
    `forward_features` (B, out_channels).
    """

    def __init__(self, width: int = 32, head: str | None = None, multi_scale_output: bool = True):
        super().__init__()
        if head not in (None, "cls"):
            raise ValueError(f"HRNet head must be None or 'cls', got {head!r}")
        if head == "cls" and not multi_scale_output:
            raise ValueError("the 'cls' head needs all four stage-4 outputs (multi_scale_output=True)")
        self.width = width
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _make_blocks(Bottleneck, 64, 64, 4)
        channels = [64 * Bottleneck.expansion]
        specs = hrnet_stage_specs(width)
        for k, spec in enumerate(specs, start=1):
            target = [c * spec.block.expansion for c in spec.num_channels]
            setattr(self, f"transition{k}", self._make_transition(channels, target))
            last_stage = k == len(specs)
            modules = []
            for m in range(spec.num_modules):
                keep_all = multi_scale_output or not (last_stage and m == spec.num_modules - 1)
                module = HighResolutionModule(spec, target if m == 0 else channels, keep_all)
                modules.append(module)
                channels = module.out_channels
            setattr(self, f"stage{k + 1}", nn.Sequential(*modules))
            channels = channels if (not last_stage or multi_scale_output) else channels[:1]
        self.branch_channels = channels
        self.head = head
        if head == "cls":
            head_planes = (32, 64, 128, 256)
            self.incre_modules = nn.ModuleList(
                _make_blocks(Bottleneck, c, p, 1) for c, p in zip(channels, head_planes))
            self.downsamp_modules = nn.ModuleList(
                _conv_bn(p * 4, q * 4, 3, 2, relu=True, bias=True)
                for p, q in zip(head_planes[:-1], head_planes[1:]))
            self.final_layer = _conv_bn(head_planes[-1] * 4, 2048, 1, 1, relu=True, bias=True)
            self.out_channels = 2048
        else:
            self.out_channels = channels[0]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _make_transition(prev: list[int], cur: list[int]) -> nn.ModuleList:
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(prev):
                layers.append(_conv_bn(prev[i], c, 3, 1, relu=True) if prev[i] != c else None)
            else:  # a new, lower-resolution branch grown from the last existing one
                steps = [_conv_bn(prev[-1], c if k == i - len(prev) else prev[-1], 3, 2, relu=True)
                         for k in range(i + 1 - len(prev))]
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        for k in (1, 2, 3):
            transition = getattr(self, f"transition{k}")
            xs = []
            for i, t in enumerate(transition):
                src = ys[i] if i < len(ys) else ys[-1]
                xs.append(src if t is None else t(src))
            ys = getattr(self, f"stage{k + 1}")(xs)
        return ys

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        ys = self.forward_branches(x)
        if self.head != "cls":
            return ys[0]
        y = self.incre_modules[0](ys[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
        return self.final_layer(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x).mean(dim=(2, 3))


def hrnet_w32(head: str | None = None, multi_scale_output: bool = True) -> HRNet:
    return HRNet(32, head, multi_scale_output)


def hrnet_w48(head: str | None = None, multi_scale_output: bool = True) -> HRNet:
    return HRNet(48, head, multi_scale_output)
