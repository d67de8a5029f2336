"""The default protocol of every benchmark and the sentences that say how a number was computed.

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import _key


@dataclass(frozen=True)
class Protocol:
    """The default protocol of a benchmark. task: ``"matching"``, ``"tss"`` (flow + co-segmentation),
    ``"coseg"`` or ``"matching+coseg"`` (synthetic: keypoints and masks). unit: what the co-segmentation
    scores are averaged over before the final mean (``"class"``; iCoseg: ``"group"``, the same computation
    over its groups, which is the iCoseg convention)."""

    task: str
    split: str | None = None
    alphas: tuple[float, ...] = ()
    normalizers: tuple[str, ...] = ()
    direction: str = "B_to_A"
    unit: str = "class"


PROTOCOLS = {
    "pf-pascal": Protocol("matching", "test", (0.1,), ("scnet",), "B_to_A"),
    "pf-willow": Protocol("matching", None, (0.05, 0.1, 0.15), ("kp_bbox", "scnet"), "B_to_A"),
    "spair": Protocol("matching", "test", (0.1,), ("bbox",), "A_to_B"),
    "synthetic": Protocol("matching+coseg", "test", (0.05, 0.1, 0.15), ("kp_bbox", "image"), "B_to_A"),
    "tss": Protocol("tss", None, (0.05,)),
    "internet": Protocol("coseg"),
    "weizmann-horse": Protocol("coseg"),
    # the test groups by default (macos_lite.data.icoseg's rule), so that a model trained on the train groups
    # is never scored on them; --split all scores every group
    "icoseg": Protocol("coseg", "test", unit="group"),
}

_NORMALIZER_TEXT = {
    "scnet": "within alpha x 224 after resizing the {img} image to 224 x 224 (SCNet/WeakAlign/MaCoSNet code)",
    "image": "within alpha x max(H, W) of the {img} image",
    "kp_bbox": "within alpha x the longer side of the box of the {img} image's ground-truth keypoints (PF/CNNGeo)",
    "bbox": "within alpha x the longer side of the {img} image's object box (SPair-71k)",
}


def describe_matching(direction: str, normalizers, alphas) -> str:
    """One sentence saying exactly how the keypoint PCK was computed."""
    moved, judged = ("target (B)", "source A") if direction == "B_to_A" else ("source (A)", "target B")
    how = "predicted map" if direction == "B_to_A" else "inverse of the predicted map"
    img = "source" if direction == "B_to_A" else "target"
    norms = "; ".join(f"'{n}': {_NORMALIZER_TEXT[n].format(img=img)}" for n in normalizers)
    return (f"Keypoint PCK at alpha {', '.join(_key(a) for a in alphas)}: {moved} keypoints transferred into the "
            f"{judged} with the {how} ({direction}), distances at the images' original resolution; a keypoint is "
            f"correct by normaliser {norms}; only keypoints visible in both images count; PCK is the mean over "
            f"pairs of each pair's fraction of correct keypoints (per class: over that class's pairs).")


def describe_tss(alpha: float, mirror_flipped: bool) -> str:
    flip = ("for pairs with flip = 1 the source is mirrored before matching and the source x-coordinates are "
            "mapped back to the unmirrored image" if mirror_flipped else "the flip flag is ignored")
    return (f"TSS flow PCK at alpha {_key(alpha)}: the flow is computed on the target's grid at its original "
            f"resolution ({flip}); a pixel with ground truth is correct when its end-point error is at most "
            f"alpha x max(H, W) of the source; mean over directed pairs per subset, 'avg' = unweighted mean of the "
            f"subset means; also reported without the flipped pairs.")


def describe_coseg(partners: int | None, empty_gt: str, method=None, unit: str = "class") -> str:
    """One sentence saying exactly how P and J were computed (``method``: the evaluated method, if any;
    ``unit``: ``"class"`` or ``"group"`` (iCoseg), what the per-image scores are first averaged over)."""
    group = "category" if unit == "class" else unit
    units = {"class": "classes"}.get(unit, unit + "s") + (" (the iCoseg convention)" if unit == "group" else "")
    skip = "skipped in J" if empty_gt == "skip" else "scored in J (1 if the prediction is empty too, else 0)"
    if method is not None and hasattr(method, "cosegment_set") and partners is not None:
        who = (f"the method co-segments each {group}'s images as one set: it sees all evaluated images of the "
               f"{group} at once (never their masks) and returns a probability map per image")
    elif partners is None:
        who = "each image of a pair folder gets the mean of the probability maps of the directed pairs it appears in"
    else:
        who = (f"each image is co-segmented with the next {partners} image(s) of its {group} in dataset order "
               f"(cyclic) and its probability map is the mean over these partners")
    if getattr(method, "refine", "none") == "edges":
        who += ("; each probability map is snapped to the image's colour edges by a guided filter (radius 1/8 of "
                "the image side, eps 0.01) before averaging")
    return (f"Co-segmentation: {who}; probabilities resized bilinearly to the ground truth's resolution and "
            f"thresholded at 0.5; P = pixel accuracy, J = foreground IoU; mean over images per {unit}, then over "
            f"{units}; images with empty ground truth count in P and are {skip}.")
