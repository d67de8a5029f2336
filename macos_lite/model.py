"""MaCoSNet: the shared encoder E, the transformation predictor G (affine -> TPS cascade) and the
co-segmentation decoder D in one module.

For a tuple of T images (a pair, T = 2, or a triplet, T = 3) the forward pass handles every ordered
pair (s, t), s != t, at once:

1. ``f = E(images)`` -- one encoder call for all images; stride-16 features L2-normalised (stride 8 with
   ``feature_stride=8``: the encoder's last stage dilated, a grid twice as fine for the correlation); with
   ``feature_stages`` such as ``(16, 32)`` the correlated descriptor concatenates several stages on that grid
   (multi-layer "hyperpixel" features, :mod:`macos_lite.hyperpixel`).
2. ``S_st = correlation(f_s, f_t)`` and ``theta_aff = G1(S_st)`` (maps t's points into s).
3. The source is warped with the affine map, ``s' = warp(s, theta_aff)``, re-encoded, and
   ``theta_tps = G2(correlation(f_s', f_t))`` (maps t's points into s'); the full map is the
   cascade ``p_s = T_aff(T_tps(p_t))`` (docs/differences.md D11).
4. ``D([f_t, S_st])`` gives the mask logits of the target t, co-segmented with its partner s (the paper's input,
   ``decoder_input="paper"``); with ``decoder_input="cooccurrence"`` D sees ``[f_t, match, mutual, coloc]``
   instead, statistics of co-occurrence that do not depend on the category or the partner's layout
   (:mod:`macos_lite.cooccurrence`; the tuple's images are co-localised together).

Taught in notebook 03 (predictor and cascade).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations

import torch
import torch.nn as nn

from . import geometry
from .backbones import build_encoder, l2_normalize
from .cooccurrence import EXTRA_CHANNELS, INPUTS, colocalize_tuples, decoder_input as cooccurrence_input
from .correlation import correlation
from .decoder import DEFAULT_WIDTHS, Decoder
from .hyperpixel import check_stages, correlation_features, stage_channels
from .predictor import affine_head, tps_head


@dataclass
class MaCoSOutput:
    """Everything a forward pass computes, for every ordered pair ``(s, t)`` of the input tuple.

    Leading dims ``(P, B)``: P ordered pairs (``pairs[p] = (s, t)``), B samples.
    ``theta_aff[p]`` ``(B, 6)`` and ``theta_tps[p]`` ``(B, 2 n^2)`` map t's points into s;
    ``corr[p]`` is ``S_st`` ``(B, h*w, h, w)`` on t's grid; ``mask_logits[p]`` ``(B, 1, H, W)`` is
    the mask of image t given partner s (None when masks were not asked for).
    """

    pairs: list[tuple[int, int]]
    theta_aff: torch.Tensor
    corr: torch.Tensor
    theta_tps: torch.Tensor | None = None
    mask_logits: torch.Tensor | None = None
    image_size: tuple[int, int] = (240, 240)
    extras: dict = field(default_factory=dict)

    def index(self, s: int, t: int) -> int:
        """Position p of the ordered pair (s, t) in the leading dimension."""
        return self.pairs.index((s, t))

    def theta(self, s: int, t: int, kind: str = "cascade") -> torch.Tensor:
        """``theta`` mapping t's points into s, ``(B, D)``: kind ``"affine"`` or ``"cascade"``."""
        p = self.index(s, t)
        if kind == "affine":
            return self.theta_aff[p]
        if self.theta_tps is None:
            raise ValueError("this output was computed without the TPS stage; ask for kind='affine'")
        return geometry.cascade_theta(self.theta_aff[p], self.theta_tps[p])

    def mask_logits_of(self, t: int, partner: int | None = None) -> torch.Tensor:
        """Mask logits of image t ``(B, 1, H, W)`` given ``partner`` (default: the first other image)."""
        if self.mask_logits is None:
            raise ValueError("this output was computed without masks")
        if partner is None:
            partner = next(s for s, tt in self.pairs if tt == t)
        return self.mask_logits[self.index(partner, t)]


class MaCoSNet(nn.Module):
    """Joint semantic matching and object co-segmentation network.

    backbone: ``"lite"`` or ``"resnet101"``; image_size: the square input size the heads and the
    decoder are built for (e.g. 128 or 240); pretrained: ImageNet weights for the encoder (True),
    random (False) or a local weights path; backbone_mode: ``"finetune"``, ``"frozen_bn"`` or
    ``"frozen"``; tps_grid_size: n of the n x n TPS lattice; detach_affine_warp: the TPS stage sees the
    affine-warped image without back-propagating into theta_aff through the resampling (G1 is trained
    by its own losses and through the composed map); feature_stride: 16 (the paper's) or 8 -- the stride
    of the features that are correlated (8: the encoder's last stage dilated, the same weights on a grid
    of ``image_size / 8`` cells; the decoder still starts from a stride-16 map, the correlation input
    average-pooled 2 x 2); decoder_input: ``"paper"`` (``[f_t, S_st]``, eq 4) or ``"cooccurrence"``
    (:mod:`macos_lite.cooccurrence`: ``[f_t, match, mutual, co-localisation]``, C + 4 channels);
    feature_stages: the encoder stages (strides 8, 16, 32, or a string like ``"16+32"``) whose L2-normalised maps
    are concatenated into the correlated descriptor (:mod:`macos_lite.hyperpixel`; default ``(16,)``, the
    paper's single stage; 32 needs a Lite backbone). ``ValueError`` for an unknown stage or decoder input.
    """

    def __init__(self, backbone: str = "lite", image_size: int = 240, pretrained=True,
                 backbone_mode: str = "finetune", tps_grid_size: int = 3, decoder_widths=None,
                 detach_affine_warp: bool = True, feature_stride: int = 16, decoder_input: str = "paper",
                 feature_stages=(16,)):
        super().__init__()
        if not isinstance(image_size, (int, float)) or isinstance(image_size, bool) or image_size < 32:
            raise ValueError(f"image_size must be a number of pixels of at least 32 (the stride-16 features' "
                             f"minimum), got {image_size!r}")
        if decoder_input not in INPUTS:
            raise ValueError(f"decoder_input must be one of {', '.join(INPUTS)}, got {decoder_input!r}")
        self.feature_stages = check_stages(feature_stages)
        self.config = dict(backbone=backbone, image_size=int(image_size), tps_grid_size=int(tps_grid_size),
                           backbone_mode=backbone_mode, decoder_widths=decoder_widths,
                           detach_affine_warp=detach_affine_warp, feature_stride=int(feature_stride),
                           decoder_input=decoder_input, feature_stages=list(self.feature_stages))
        self.image_size = (int(image_size), int(image_size))
        self.tps_grid_size = int(tps_grid_size)
        self.detach_affine_warp = detach_affine_warp
        self.feature_stride = int(feature_stride)
        self.decoder_input = decoder_input
        self.encoder = build_encoder(backbone, pretrained=pretrained, mode=backbone_mode,
                                     output_stride=self.feature_stride, deep=32 in self.feature_stages)
        with torch.no_grad():
            was_training = self.encoder.training
            f = self.encoder.eval()(torch.zeros(1, 3, *self.image_size))
            self.encoder.train(was_training)
        self.grid_size = tuple(f[3].shape[-2:])
        h, w = self.grid_size
        self.affine_head = affine_head(self.grid_size)
        self.tps_head = tps_head(self.grid_size, self.tps_grid_size)
        widths = decoder_widths or DEFAULT_WIDTHS.get(backbone, (128, 64, 32))
        c = self.encoder.channels
        f_channels = stage_channels(self.encoder, self.feature_stages)
        if decoder_input == "paper":
            dec_channels = f_channels + h * w
        else:  # the statistics are taken on the stride-16 grid the decoder starts from
            dec_channels = f_channels + EXTRA_CHANNELS
        self.decoder = Decoder(dec_channels, (c[0], c[1], c[2]), tuple(widths))

    # ------------------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``(N, 3, H, W)`` -> (the correlated features ``(N, C, h, w)``: L2-normalised, on the stride-16 (or 8)
        grid, of the ``feature_stages``; the [s2, s4, s8] maps for the decoder's skips)."""
        feats = self.encoder(images)
        return correlation_features(self.encoder, feats, self.feature_stages), feats[:3]

    def _stack(self, images) -> torch.Tensor:
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images), dim=1)
        if not torch.is_tensor(images) or images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(
                "images must be a (B, T, 3, H, W) tensor or a list of T tensors (B, 3, H, W), "
                f"got {tuple(getattr(images, 'shape', ()))}"
            )
        if images.shape[1] < 2:
            raise ValueError(f"need at least two images per sample (a pair), got T = {images.shape[1]}")
        if tuple(images.shape[-2:]) != self.image_size:
            raise ValueError(
                f"this model was built for {self.image_size[0]}x{self.image_size[1]} inputs, got "
                f"{tuple(images.shape[-2:])}; resize with macos_lite.geometry.resize or use predict()"
            )
        return images

    def forward(self, images, tps: bool = True, masks: bool = True, pairs=None) -> MaCoSOutput:
        """images: ``(B, T, 3, H, W)`` in [0, 1] or a list of T ``(B, 3, H, W)``; T = 2 (pair) or 3.

        pairs: the ordered pairs (s, t) to compute (default: all); e.g. ``[(0, 1)]`` for evaluation.
        """
        images = self._stack(images)
        b, t = images.shape[:2]
        pairs = list(permutations(range(t), 2)) if pairs is None else [tuple(p) for p in pairs]
        if not pairs or any(s == q or not (0 <= s < t and 0 <= q < t) for s, q in pairs):
            raise ValueError(f"pairs must be ordered pairs of distinct image indices below {t}, got {pairs}")
        flat = images.transpose(0, 1).reshape(t * b, *images.shape[2:])  # image-major: [img0 batch, img1 batch, ...]
        f16, skips = self.encode(flat)

        def gather(x: torch.Tensor, which: int) -> torch.Tensor:  # (T*B, ...) -> (P*B, ...) for sources/targets
            idx = torch.tensor([pq[which] for pq in pairs], device=x.device)
            return x.view(t, b, *x.shape[1:])[idx].reshape(len(pairs) * b, *x.shape[1:])

        f_src, f_tgt = gather(f16, 0), gather(f16, 1)
        corr = correlation(f_src, f_tgt)
        theta_aff = self.affine_head(corr)
        theta_tps = None
        if tps:
            warp_theta = theta_aff.detach() if self.detach_affine_warp else theta_aff
            warped = geometry.warp_image(gather(flat, 0), warp_theta, "affine", check=False)
            f_warped = self.encode(warped)[0]
            theta_tps = self.tps_head(correlation(f_warped, f_tgt)).view(len(pairs), b, -1)
        mask_logits = None
        if masks:
            coloc = None
            if self.decoder_input == "cooccurrence":  # the tuple's images are one set
                g16 = self.coarse_features(f16)
                coloc = gather(colocalize_tuples(g16.view(t, b, *g16.shape[1:])).flatten(0, 1), 1)
            mask_logits = self.decode_masks(f_src, f_tgt, [gather(s, 1) for s in skips], corr, coloc)
            mask_logits = mask_logits.view(len(pairs), b, 1, *self.image_size)
        p = len(pairs)
        return MaCoSOutput(pairs=pairs, theta_aff=theta_aff.view(p, b, -1), corr=corr.view(p, b, *corr.shape[1:]),
                           theta_tps=theta_tps, mask_logits=mask_logits, image_size=self.image_size)

    def _grid16(self, f: torch.Tensor) -> torch.Tensor:
        """Features on the stride-16 grid the decoder starts from (average-pooled 2 x 2 at stride 8)."""
        return torch.nn.functional.avg_pool2d(f, 2, ceil_mode=True) if self.feature_stride == 8 else f

    def coarse_features(self, f: torch.Tensor) -> torch.Tensor:
        """L2-normalised features on the decoder's stride-16 grid (the co-occurrence statistics' input)."""
        return l2_normalize(self._grid16(f)) if self.feature_stride == 8 else f

    def decode_masks(self, f_src: torch.Tensor, f_tgt: torch.Tensor, skips_tgt: list[torch.Tensor],
                     corr: torch.Tensor | None = None, coloc: torch.Tensor | None = None) -> torch.Tensor:
        """D's mask logits ``(N, 1, H, W)`` of targets co-segmented with sources, from their encodings (see
        :meth:`encode`) and the target's skip maps. Lets a caller encode each image of a set once and decode many
        pairs.

        ``decoder_input="paper"``: ``D([f_t, S_st])``; ``corr`` = ``S_st`` if already computed.
        ``"cooccurrence"``: ``D([f_t, match, mutual, coloc])``; ``coloc`` ``(N, 2, h16, w16)`` are the targets'
        co-localisation channels within their set (:func:`macos_lite.cooccurrence.colocalization_channels`;
        default: each pair co-localised by itself).
        """
        if self.decoder_input == "paper":
            corr = correlation(f_src, f_tgt) if corr is None else corr
            return self.decoder(self._grid16(torch.cat((f_tgt, corr), dim=1)), skips_tgt, self.image_size)
        g_src, g_tgt = self.coarse_features(f_src), self.coarse_features(f_tgt)
        if coloc is None:
            coloc = colocalize_tuples(torch.stack((g_src, g_tgt)))[1]
        return self.decoder(cooccurrence_input(g_tgt, g_src, coloc), skips_tgt, self.image_size)

    # ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, image_A: torch.Tensor, image_B: torch.Tensor, tps: bool = True) -> dict:
        """Inference for a pair of images of any size (``(3, H, W)`` or ``(B, 3, H, W)`` in [0, 1]).

        Returns ``theta`` (the cascade, or affine when ``tps=False``) mapping B's normalised points into
        A, ``kind``, ``theta_aff``, and mask probabilities ``mask_A``/``mask_B`` at each input's size
        (without the batch dimension when single images were given).

        Converted as :func:`macos_lite.data.imageio.load_image` converts files: uint8 (/ 255), any float dtype
        (float64, float16) to the model's, grayscale
        (repeated to RGB), RGBA (alpha dropped), channels-last ``(H, W, 3)``/``(B, H, W, 3)``. Raises
        ``ValueError`` naming ``image_A``/``image_B`` for NaN/inf pixels, values outside [0, 1] (0..255
        floats, normalised images), other shapes, or batches of different sizes.
        """
        a, single = geometry.as_image_batch(image_A, "image_A", where="predict")
        b, single_b = geometry.as_image_batch(image_B, "image_B", where="predict")
        if single != single_b or a.shape[0] != b.shape[0]:
            raise ValueError(f"image_A {tuple(image_A.shape)} and image_B {tuple(image_B.shape)} must both be single "
                             "images or batches of the same size")
        weight = next(self.parameters())  # any float dtype (float64 from `img / 255.0`, float16) -> the model's
        a, b = a.to(weight.device, weight.dtype), b.to(weight.device, weight.dtype)
        size_a, size_b = a.shape[-2:], b.shape[-2:]
        was_training = self.training
        self.eval()
        try:
            out = self(torch.stack((geometry.resize(a, self.image_size), geometry.resize(b, self.image_size)), 1), tps=tps)
        finally:
            self.train(was_training)
        kind = "cascade" if tps else "affine"
        res = {
            "theta": out.theta(0, 1, kind),
            "kind": kind,
            "theta_aff": out.theta_aff[0],
            "mask_A": geometry.resize(torch.sigmoid(out.mask_logits_of(0)), size_a),
            "mask_B": geometry.resize(torch.sigmoid(out.mask_logits_of(1)), size_b),
        }
        if single:
            res = {k: (v[0] if torch.is_tensor(v) else v) for k, v in res.items()}
        return res
