"""The published numbers of MaCoSNet ("Show, Match and Segment", TPAMI 2020) as data.

Every table of the "Experimental results" section of the authors' slides, row for row, with the
values as printed (PF-PASCAL and SPair-71k in %, the others as fractions; ``None`` where the slides
print "-"). ``Ours`` is MaCoSNet. Each :class:`Table` also says how its numbers were measured
(``normalizer``, ``notes``) as far as that is known, and ``keys`` says which number of our own
evaluation summary lines up with each column (used by :mod:`macos_lite.report`).

>>> from macos_lite import paper
>>> paper.TABLES["pf-willow"].value("Ours", "0.1")
0.854

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SOURCE = ("Chen, Lin, Yang, Huang, 'Show, Match and Segment: Joint Weakly Supervised Learning of Semantic "
          "Matching and Object Co-segmentation', TPAMI 2020: the authors' slides, 'Experimental results'")


@dataclass(frozen=True)
class Row:
    """One method: ``meta`` fills the table's ``meta_columns`` (descriptor, ...); ``values`` its columns."""

    method: str
    meta: tuple[str, ...]
    values: tuple[float | None, ...]


@dataclass(frozen=True)
class Table:
    """A results table of the slides.

    columns: headers as printed; keys: the matching entry of our summary for each column (a class or
    subset name, an alpha such as ``"0.1"``, ``"mean"``/``"avg"``, or ``"<group>/P"``/``"<group>/J"``
    for co-segmentation); decimals: digits printed per column; percent: values are in % (ours are
    fractions and get multiplied by 100 for display); normalizer: the PCK normaliser of
    :mod:`macos_lite.metrics` that the numbers were (or are suspected to be) measured with; alpha: the
    PCK threshold of the table when it has a single one; peers: the rows shown beside ours by default.
    """

    key: str
    title: str
    metric: str
    columns: tuple[str, ...]
    keys: tuple[str, ...]
    meta_columns: tuple[str, ...]
    rows: tuple[Row, ...]
    decimals: tuple[int, ...]
    percent: bool
    normalizer: str | None
    alpha: float | None
    notes: str
    peers: tuple[str, ...]
    source: str = SOURCE

    def __post_init__(self):
        n = len(self.columns)
        if len(self.keys) != n or len(self.decimals) != n:
            raise ValueError(f"table {self.key}: columns, keys and decimals must have the same length")
        for row in self.rows:
            if len(row.values) != n or len(row.meta) != len(self.meta_columns):
                raise ValueError(f"table {self.key}: row {row.method!r} does not fit the columns")

    def rows_of(self, method: str) -> list[Row]:
        """Every row of ``method`` (SPair-71k lists each method twice: without and with fine-tuning)."""
        rows = [r for r in self.rows if r.method == method]
        if not rows:
            raise KeyError(f"table {self.key} has no row {method!r}; rows: {[r.method for r in self.rows]}")
        return rows

    def value(self, method: str, key: str) -> float | None:
        """The published number of ``method`` (its first row) in the column whose key is ``key``."""
        return self.rows_of(method)[0].values[self.keys.index(key)]

    def to_dict(self) -> dict:
        """JSON-ready: every field, rows as ``{"method", "meta", "values"}``."""
        return asdict(self)


def _row(method: str, meta: tuple[str, ...], values: tuple) -> Row:
    return Row(method, meta, tuple(values))


# PF-PASCAL classes in the slides' order (the dataset's standard order) and their column headers.
PF_PASCAL_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
_PF_PASCAL_HEADERS = ("aero", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "d.table",
                      "dog", "horse", "moto", "person", "plant", "sheep", "sofa", "train", "tv")
TSS_SUBSETS = ("FG3DCar", "JODS", "PASCAL")
INTERNET_CLASSES = ("airplane", "car", "horse")

PF_PASCAL = Table(
    key="pf-pascal",
    title="Semantic matching on PF-PASCAL (test, 299 pairs)",
    metric="PCK@0.1 (%)",
    columns=_PF_PASCAL_HEADERS + ("mean",),
    keys=PF_PASCAL_CLASSES + ("mean",),
    meta_columns=("Descriptor",),
    decimals=(1,) * 21,
    percent=True,
    normalizer="scnet",
    alpha=0.1,
    notes=("Threshold 0.1 x 224 after resizing both images to 224 x 224 (the SCNet procedure of the "
           "official code); target keypoints transferred into the source. 'mean' is the mean over "
           "pairs, not over classes: the class columns of the 'Ours' row average 77.3."),
    peers=("NC-Net", "WeakMatchNet"),
    rows=(
        _row("Proposal Flow+LOM", ("HOG",), (73.3, 74.4, 54.4, 50.9, 49.6, 73.8, 72.9, 63.6, 46.1, 79.8, 42.5,
                                             48.0, 68.3, 66.3, 42.1, 62.1, 65.2, 57.1, 64.4, 58.0, 62.5)),
        _row("UCN", ("GoogLeNet",), (64.8, 58.7, 42.8, 59.6, 47.0, 42.2, 61.0, 45.6, 49.9, 52.0, 48.5, 49.5,
                                     53.2, 72.7, 53.0, 41.4, 83.3, 49.0, 73.0, 66.0, 55.6)),
        _row("A2Net", ("ResNet-101",), (None,) * 20 + (59.0,)),
        _row("GSF", ("ResNet-50",), (None,) * 20 + (66.5,)),
        _row("SCNet-AG+", ("VGG-16",), (85.5, 84.4, 66.3, 70.8, 57.4, 82.7, 82.3, 71.6, 54.3, 95.8, 55.2, 59.5,
                                        68.6, 75.0, 56.3, 60.4, 60.0, 73.7, 66.5, 76.7, 72.2)),
        _row("CNNGeo", ("ResNet-101",), (83.0, 82.2, 81.1, 50.0, 57.8, 79.9, 92.8, 77.5, 44.7, 85.4, 28.1, 69.8,
                                         65.4, 77.1, 64.0, 65.2, 100.0, 50.8, 44.3, 54.4, 69.5)),
        _row("CNNGeo w/ Inlier", ("ResNet-101",), (84.7, 88.9, 80.9, 55.6, 76.6, 89.5, 93.9, 79.6, 52.0, 85.4,
                                                   28.1, 71.8, 67.0, 75.1, 66.3, 70.5, 100.0, 62.1, 62.3, 61.1,
                                                   74.8)),
        _row("NC-Net", ("ResNet-101",), (86.8, 86.7, 86.7, 55.6, 82.8, 88.6, 93.8, 87.1, 54.3, 87.5, 43.2, 82.0,
                                         64.1, 79.2, 71.1, 71.0, 60.0, 54.2, 75.0, 82.8, 78.9)),
        _row("WeakMatchNet", ("ResNet-101",), (85.6, 89.6, 82.1, 83.3, 85.9, 92.5, 93.9, 80.2, 52.2, 85.4, 55.2,
                                               75.2, 64.0, 77.9, 67.2, 73.8, 100.0, 65.3, 69.3, 61.1, 78.0)),
        _row("Ours", ("ResNet-101",), (83.4, 87.4, 85.3, 72.2, 76.6, 94.6, 94.7, 86.6, 54.9, 89.6, 52.6, 80.2,
                                       70.6, 79.2, 73.3, 70.5, 100.0, 63.0, 66.3, 64.4, 79.0)),
    ),
)

PF_WILLOW = Table(
    key="pf-willow",
    title="Semantic matching on PF-WILLOW",
    metric="PCK",
    columns=("alpha = 0.05", "alpha = 0.1", "alpha = 0.15"),
    keys=("0.05", "0.1", "0.15"),
    meta_columns=("Descriptor",),
    decimals=(3, 3, 3),
    percent=False,
    normalizer="scnet",
    alpha=None,
    notes=("The slides do not name the normaliser. The official code evaluates PF-WILLOW with the image-size "
           "'scnet' normaliser (L = 224 after resizing to 224 x 224) on 450 pairs, and these numbers are far "
           "above the keypoint-box-normalised peers of the literature, so they are most likely image-size "
           "normalised (suspected, not confirmed). The standard protocol normalises by the box of "
           "the source keypoints ('kp_bbox'); peer rows may mix the two."),
    peers=("NC-Net", "CNNGeo w/ Inlier"),
    rows=(
        _row("SIFT Flow", ("VGG-16",), (0.324, 0.456, 0.555)),
        _row("CNNGeo", ("ResNet-101",), (0.448, 0.777, 0.899)),
        _row("CNNGeo w/ Inlier", ("ResNet-101",), (0.477, 0.812, 0.917)),
        _row("Proposal Flow+LOM", ("HOG",), (0.284, 0.568, 0.682)),
        _row("UCN", ("GoogLeNet",), (0.291, 0.417, 0.513)),
        _row("SCNet-AG+", ("VGG-16",), (0.386, 0.704, 0.853)),
        _row("A2Net", ("ResNet-101",), (None, 0.680, None)),
        _row("WeakMatchNet", ("ResNet-101",), (0.484, 0.816, 0.918)),
        _row("RTNs", ("ResNet-101",), (0.413, 0.719, 0.862)),
        _row("NC-Net", ("ResNet-101",), (0.514, 0.818, 0.927)),
        _row("Ours", ("ResNet-101",), (0.538, 0.854, 0.939)),
    ),
)

SPAIR = Table(
    key="spair",
    title="Semantic matching on SPair-71k (test, 12,234 pairs)",
    metric="PCK@0.1 (%)",
    columns=("Avg.",),
    keys=("mean",),
    meta_columns=("Fine-tune",),
    decimals=(1,),
    percent=True,
    normalizer="bbox",
    alpha=0.1,
    notes=("Threshold 0.1 x the longer side of the target object's box (the SPair-71k standard; the "
           "normaliser is not printed on the slides). 'Fine-tune' = yes: trained on SPair-71k trn; "
           "otherwise trained on PF-PASCAL."),
    peers=("NC-Net",),
    rows=(
        _row("CNNGeo", ("no",), (18.1,)),
        _row("A2Net", ("no",), (20.1,)),
        _row("CNNGeo w/ Inlier", ("no",), (21.1,)),
        _row("NC-Net", ("no",), (26.4,)),
        _row("Ours", ("no",), (25.8,)),
        _row("CNNGeo", ("yes",), (20.6,)),
        _row("A2Net", ("yes",), (22.3,)),
        _row("CNNGeo w/ Inlier", ("yes",), (20.9,)),
        _row("NC-Net", ("yes",), (20.1,)),
        _row("Ours", ("yes",), (26.6,)),
    ),
)

TSS = Table(
    key="tss",
    title="Semantic matching on TSS (flow PCK)",
    metric="flow PCK@0.05",
    columns=TSS_SUBSETS + ("Avg.",),
    keys=TSS_SUBSETS + ("avg",),
    meta_columns=("Descriptor", "Supervision"),
    decimals=(3, 3, 3, 3),
    percent=False,
    normalizer="tss-flow",
    alpha=0.05,
    notes=("Per subset: the mean over its directed pairs of the fraction of ground-truth pixels whose flow "
           "end-point error is at most 0.05 x max(H, W) of the image the flow points into (the TSS evaluation "
           "kit). 'Avg.' is the unweighted mean of the three subsets."),
    peers=("DCTM", "CNNGeo w/ Inlier"),
    rows=(
        _row("SIFT Flow", ("SIFT", "-"), (0.632, 0.509, 0.360, 0.500)),
        _row("DSP", ("SIFT", "-"), (0.487, 0.465, 0.382, 0.445)),
        _row("TSS", ("HOG", "-"), (0.829, 0.595, 0.483, 0.636)),
        _row("DAISY", ("DAISY", "-"), (0.636, 0.373, 0.338, 0.449)),
        _row("UCN", ("GoogLeNet", "Strong"), (0.853, 0.672, 0.511, 0.679)),
        _row("FCSS", ("FCSS", "Strong"), (0.830, 0.656, 0.494, 0.660)),
        _row("Proposal Flow", ("FCSS", "Strong"), (0.839, 0.635, 0.582, 0.685)),
        _row("DCTM", ("FCSS", "Strong"), (0.891, 0.721, 0.610, 0.740)),
        _row("SCNet-AG+", ("VGG-16", "Strong"), (0.776, 0.608, 0.474, 0.619)),
        _row("CNNGeo", ("ResNet-101", "Strong"), (0.886, 0.758, 0.560, 0.735)),
        _row("CNNGeo w/ Inlier", ("ResNet-101", "Weak"), (0.892, 0.758, 0.562, 0.737)),
        _row("Ours w/o co-seg", ("ResNet-101", "Weak"), (0.907, 0.781, 0.565, 0.751)),
        _row("Ours", ("ResNet-101", "Weak"), (0.908, 0.783, 0.615, 0.769)),
    ),
)


def _pj(groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{g}/{m}" for g in groups for m in ("P", "J"))


TSS_COSEG = Table(
    key="tss-coseg",
    title="Object co-segmentation on TSS",
    metric="P / J",
    columns=_pj(TSS_SUBSETS + ("Avg.",)),
    keys=_pj(TSS_SUBSETS + ("avg",)),
    meta_columns=("Descriptor",),
    decimals=(3, 2) * 4,
    percent=False,
    normalizer=None,
    alpha=None,
    notes=("P: pixel accuracy, J: foreground intersection over union, at the ground truth's resolution; mean "
           "over the images of each subset; 'Avg.' is the mean of the three subsets."),
    peers=("Jerripothula et al.", "Ours w/o matching"),
    rows=(
        _row("SIFT Flow", ("SIFT",), (0.661, 0.42, 0.557, 0.24, 0.628, 0.41, 0.615, 0.36)),
        _row("DSP", ("SIFT",), (0.502, 0.29, 0.454, 0.22, 0.496, 0.34, 0.484, 0.28)),
        _row("Hati et al.", ("SIFT",), (0.785, 0.47, 0.778, 0.31, 0.701, 0.31, 0.755, 0.36)),
        _row("Chang et al.", ("SIFT",), (0.872, 0.67, 0.851, 0.52, 0.723, 0.40, 0.815, 0.53)),
        _row("Jerripothula et al.", ("SIFT",), (0.913, 0.78, 0.900, 0.65, 0.880, 0.73, 0.898, 0.72)),
        _row("Faktor et al.", ("HOG",), (0.873, 0.69, 0.859, 0.54, 0.771, 0.50, 0.834, 0.58)),
        _row("Joulin et al.", ("SIFT",), (0.651, 0.46, 0.626, 0.32, 0.587, 0.40, 0.621, 0.39)),
        _row("MRW", ("SIFT",), (0.784, 0.63, 0.730, 0.46, 0.804, 0.66, 0.773, 0.58)),
        _row("DFF", ("DAISY",), (0.704, 0.33, 0.696, 0.21, 0.601, 0.21, 0.667, 0.25)),
        _row("TSS", ("HOG",), (0.877, 0.76, 0.761, 0.50, 0.778, 0.65, 0.805, 0.63)),
        _row("Ours w/o matching", ("ResNet-101",), (0.958, 0.88, 0.911, 0.71, 0.829, 0.61, 0.899, 0.73)),
        _row("Ours", ("ResNet-101",), (0.963, 0.90, 0.940, 0.77, 0.939, 0.86, 0.947, 0.84)),
    ),
)

INTERNET = Table(
    key="internet",
    title="Object co-segmentation on Internet (Airplane100, Car100, Horse100)",
    metric="P / J",
    columns=_pj(("Airplane", "Car", "Horse", "Avg.")),
    keys=_pj(INTERNET_CLASSES + ("avg",)),
    meta_columns=("Descriptor",),
    decimals=(3, 2) * 4,
    percent=False,
    normalizer=None,
    alpha=None,
    notes=("P: pixel accuracy, J: foreground intersection over union, on the 100-image subsets; how the "
           "'noise' images with empty ground truth entered J is not stated. Some 'Avg.' entries (e.g. "
           "Rubinstein et al.) are not the mean of their class columns; they are copied as printed."),
    peers=("DOCS", "Hsu et al."),
    rows=(
        _row("DOCS", ("VGG-16",), (0.946, 0.64, 0.940, 0.83, 0.914, 0.65, 0.933, 0.70)),
        _row("Sun et al.", ("HOG",), (0.886, 0.36, 0.870, 0.73, 0.876, 0.55, 0.877, 0.55)),
        _row("Joulin et al.", ("SIFT",), (0.475, 0.12, 0.592, 0.35, 0.642, 0.30, 0.570, 0.24)),
        _row("Kim et al.", ("SIFT",), (0.802, 0.08, 0.689, 0.0004, 0.751, 0.06, 0.754, 0.05)),
        _row("Rubinstein et al.", ("SIFT",), (0.880, 0.56, 0.854, 0.64, 0.828, 0.52, 0.827, 0.43)),
        _row("Chen et al.", ("HOG",), (0.902, 0.40, 0.876, 0.65, 0.893, 0.58, 0.890, 0.54)),
        _row("Quan et al.", ("SIFT",), (0.910, 0.56, 0.885, 0.67, 0.893, 0.58, 0.896, 0.60)),
        _row("Hati et al.", ("SIFT",), (0.777, 0.33, 0.621, 0.43, 0.738, 0.20, 0.712, 0.32)),
        _row("Chang et al.", ("SIFT",), (0.726, 0.27, 0.759, 0.36, 0.797, 0.36, 0.761, 0.33)),
        _row("MRW", ("SIFT",), (0.528, 0.36, 0.647, 0.42, 0.701, 0.39, 0.625, 0.39)),
        _row("Jerripothula et al.", ("SIFT",), (0.818, 0.48, 0.847, 0.69, 0.813, 0.50, 0.826, 0.56)),
        _row("Hsu et al.", ("VGG-16",), (0.936, 0.66, 0.914, 0.79, 0.876, 0.59, 0.909, 0.68)),
        _row("Ours", ("ResNet-101",), (0.941, 0.65, 0.940, 0.82, 0.922, 0.63, 0.935, 0.70)),
    ),
)

TABLES: dict[str, Table] = {t.key: t for t in (PF_PASCAL, PF_WILLOW, SPAIR, TSS, TSS_COSEG, INTERNET)}

# dataset name (as in `macos-lite evaluate --dataset`) -> its tables
_DATASET_TABLES = {"pf-pascal": ("pf-pascal",), "pf-willow": ("pf-willow",), "spair": ("spair",),
                   "tss": ("tss", "tss-coseg"), "internet": ("internet",)}


def tables_for(dataset: str) -> list[Table]:
    """The published tables of a benchmark (none for ``synthetic`` and ``weizmann-horse``)."""
    return [TABLES[k] for k in _DATASET_TABLES.get(dataset, ())]
