"""Reading the files of the benchmarks: images, masks, Middlebury flows, MATLAB annotations, CSV lists.

Everything comes back in the package's conventions:

* images: float32 tensors ``(3, H, W)`` in ``[0, 1]``; grayscale, palette, RGBA/LA (alpha dropped),
  CMYK and 16-bit images are converted, never rejected;
* masks: float32 tensors ``(1, H, W)`` with values in ``{0, 1}``;
* flows: float32 tensors ``(H, W, 2)`` holding ``(u, v)`` pixel displacements.

Pixels are stored as the file stores them: EXIF orientation tags are ignored, as by MATLAB's ``imread``
and the official code, because the benchmarks' annotations refer to the stored pixel grid.

Errors name the file and the fix:

* :class:`DataNotFoundError` (a ``FileNotFoundError``): the file or the dataset folder is missing --
  check the path, or fetch the dataset with ``macos-lite download NAME``;
* :class:`DataError` (a ``ValueError``): the file exists but is corrupt or malformed -- which file, which
  field, and that the dataset should be downloaded again.

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

FLO_MAGIC = 202021.25  # first 4 bytes of a Middlebury .flo file, as float32
FLO_UNKNOWN = 1e9  # flow components above this mean "no ground truth here"


class DataError(ValueError):
    """A data file exists but cannot be used (corrupt, wrong format, missing field or column)."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A data file or a dataset folder is missing."""


# datasets without a download command: where they come from
MANUAL_SOURCES = {
    "weizmann-horse": "get the Weizmann Horse database (Borenstein & Ullman, ECCV 2002) by hand and put its "
                      "rgb/ and figure_ground/ folders under the dataset root (`macos-lite download "
                      "weizmann-horse` explains where)",
    "icoseg": "request the iCoseg archive from its authors (Batra et al., CVPR 2010) and put its images/ and "
              "ground_truth/ folders under the dataset root (`macos-lite download icoseg` explains where)",
}


def download_hint(dataset: str | None) -> str:
    """The fix for a missing or broken dataset file, as a sentence fragment."""
    if dataset in MANUAL_SOURCES:
        return MANUAL_SOURCES[dataset]
    if dataset:
        return f"run `macos-lite download {dataset}`"
    return "run `macos-lite download NAME` for its dataset"


def not_found(what: str, dataset: str | None) -> DataNotFoundError:
    """The error for missing data: ``what`` is missing, check the path or download the dataset."""
    return DataNotFoundError(f"{what}. Check the path, or {download_hint(dataset)}.")


def _require_file(path, dataset: str | None) -> Path:
    """``path`` as a ``Path`` when it is a readable file; otherwise an error that says what is there: a folder,
    a broken symbolic link (and its target), or nothing (then the download hint)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a file: a data file was expected there. Move the folder away "
                        "and put the file in its place")
    if path.is_symlink():
        target = os.readlink(path)
        raise DataNotFoundError(f"{path} is a broken symbolic link to {target}, which does not exist: restore the "
                                "target, or replace the link by the file")
    if path.exists():
        raise DataError(f"{path} is not a regular file (a device, socket or pipe): put the data file there")
    raise not_found(f"{path}: file not found", dataset)


def _corrupt(path, what: str, dataset: str | None) -> DataError:
    return DataError(f"{path}: {what}. The file looks corrupt or truncated: {download_hint(dataset)} again.")


# ---------------------------------------------------------------------------------------------------------
# Images and masks
# ---------------------------------------------------------------------------------------------------------

def _open(path, dataset: str | None) -> Image.Image:
    path = _require_file(path, dataset)
    try:
        image = Image.open(path)
        image.load()  # decode now, so that truncated files fail here with the file's name
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise _corrupt(path, f"cannot decode the image ({err})", dataset) from err
    return image


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """PIL image of any mode -> float32 array ``(H, W, 3)`` in [0, 1]."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale (PNG): scale by the 16-bit range; PIL's convert("RGB") would clip at 255
        gray = np.asarray(image).astype(np.float32) / 65535.0
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    if mode == "F":  # floating-point images are taken to be in [0, 1] already
        gray = np.asarray(image, dtype=np.float32)
        return np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
    if mode in ("1", "L", "LA"):
        gray = np.asarray(image.convert("L"), dtype=np.float32) / 255.0  # LA: alpha dropped
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in ("P", "PA"):
        image = image.convert("RGBA")  # via RGBA: palettes with transparency convert without warnings
    if image.mode != "RGB":
        image = image.convert("RGB")  # RGBA: alpha dropped; CMYK, YCbCr, LAB, HSV: colour conversion
    return np.asarray(image, dtype=np.float32) / 255.0


def load_image(path, dataset: str | None = None) -> torch.Tensor:
    """Read an image file as a float32 tensor ``(3, H, W)`` in [0, 1].

    Grayscale (1, L), L+alpha, palette (P), RGBA (alpha dropped, not composited), CMYK, YCbCr and 16-bit
    (I;16, I: divided by 65535) images are converted to RGB. ``dataset`` names the benchmark in error
    messages (for the ``macos-lite download`` hint).
    """
    rgb = _to_rgb_array(_open(path, dataset))
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def load_mask(path, threshold: float | None = None, dataset: str | None = None) -> torch.Tensor:
    """Read a binary mask as a float32 tensor ``(1, H, W)`` with values in {0, 1}.

    Foreground is ``value > threshold`` on the 0..255 scale, taking the brightest channel of colour masks
    (16-bit masks are rescaled to 0..255). Default threshold: 127 for JPEG masks (compression blurs the
    0/255 edges, e.g. Weizmann Horse), 0 otherwise (PNG masks store 0/1 or 0/255, TSS, Internet).
    """
    path = Path(path)
    if threshold is None:
        threshold = 127.0 if path.suffix.lower() in (".jpg", ".jpeg") else 0.0
    values = _to_rgb_array(_open(path, dataset)).max(axis=2) * 255.0
    return torch.from_numpy((values > threshold).astype(np.float32))[None]


# ---------------------------------------------------------------------------------------------------------
# Middlebury optical flow (.flo)
# ---------------------------------------------------------------------------------------------------------

def read_flo(path, dataset: str | None = None) -> torch.Tensor:
    """Read a Middlebury ``.flo`` file as a float32 tensor ``(H, W, 2)`` of ``(u, v)`` displacements.

    Layout (little-endian): float32 magic 202021.25, int32 width, int32 height, then ``H*W*2`` float32 in
    row-major order, u and v interleaved. Values above 1e9 (:data:`FLO_UNKNOWN`) mark pixels without
    ground truth and are returned unchanged.
    """
    path = _require_file(path, dataset)
    data = path.read_bytes()
    if len(data) < 12:
        raise _corrupt(path, f"only {len(data)} bytes, shorter than the 12-byte .flo header", dataset)
    magic = float(np.frombuffer(data, "<f4", count=1)[0])
    if magic != FLO_MAGIC:
        raise _corrupt(path, f"bad magic number {magic!r}, expected {FLO_MAGIC} (Middlebury .flo)", dataset)
    width, height = (int(v) for v in np.frombuffer(data, "<i4", count=2, offset=4))
    if width <= 0 or height <= 0:
        raise _corrupt(path, f"invalid flow size {width}x{height} in the header", dataset)
    expected = 12 + 8 * width * height
    if len(data) != expected:
        what = f"the header says {width}x{height} (expecting {expected} bytes) but the file has {len(data)}"
        raise _corrupt(path, what, dataset)
    flow = np.frombuffer(data, "<f4", offset=12).reshape(height, width, 2)
    return torch.from_numpy(flow.copy())


def write_flo(path, flow, overwrite: bool = True) -> None:
    """Write a flow ``(H, W, 2)`` (tensor or array) as a Middlebury ``.flo`` file, creating folders.

    The file appears atomically (:func:`macos_lite.cli_common.atomic_write`); ``overwrite=False`` refuses an
    existing file (``FileExistsError``); a full disk raises :class:`~macos_lite.cli_common.NoSpaceError`.
    """
    from macos_lite.cli_common import atomic_write

    flow = flow.detach().cpu().numpy() if torch.is_tensor(flow) else np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"{path}: a flow must have shape (H, W, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    atomic_write(path, header + np.ascontiguousarray(flow, dtype="<f4").tobytes(), overwrite=overwrite)


# ---------------------------------------------------------------------------------------------------------
# MATLAB annotations, CSV pair lists
# ---------------------------------------------------------------------------------------------------------

def load_mat(path, fields, dataset: str | None = None) -> dict[str, np.ndarray]:
    """Read the named ``fields`` of a MATLAB ``.mat`` file (v4-v7.2) as numpy arrays."""
    path = _require_file(path, dataset)
    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError as err:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; save it with -v7.") from err
    except Exception as err:  # scipy raises many types for damaged files
        raise _corrupt(path, f"cannot read the MATLAB file ({type(err).__name__}: {err})", dataset) from err
    missing = [f for f in fields if f not in data]
    if missing:
        found = sorted(k for k in data if not k.startswith("__"))
        raise DataError(
            f"{path}: missing field(s) {missing} (found {found}). The annotation is not in the expected "
            f"format: {download_hint(dataset)} again."
        )
    out = {f: np.asarray(data[f]) for f in fields}
    for f, value in out.items():
        what = _not_real_numbers(value.dtype)
        if what:
            raise DataError(f"{path}: field {f!r} holds {what}, not real numbers; the annotation is not in the "
                            f"expected format: fix the file, or {download_hint(dataset)} again.")
    return out


def _not_real_numbers(dtype: np.dtype) -> str | None:
    """What a MATLAB field of ``dtype`` holds when it is not real numbers (``None`` when it is): text, a cell
    array, a struct or complex numbers."""
    if dtype.names:
        return "a struct"
    if np.issubdtype(dtype, np.complexfloating):
        return "complex numbers"
    if np.issubdtype(dtype, np.number) or dtype == bool:
        return None
    return {"U": "text", "S": "text", "O": "a cell array"}.get(dtype.kind, f"{dtype} values")


TEXT_ENCODINGS = ("utf-8-sig", "utf-16", "cp1252", "latin-1")  # tried in order (latin-1 decodes any bytes)


def read_text(path, dataset: str | None = None) -> str:
    """A text file as ``str``, whatever system wrote it: a UTF-8 BOM is dropped, UTF-16 (with its BOM),
    Windows-1252 and latin-1 files are decoded, and CRLF / CR line endings become ``\\n``.

    Raises :class:`DataNotFoundError` when the file is missing.
    """
    path = _require_file(path, dataset)
    data = path.read_bytes()
    for encoding in TEXT_ENCODINGS:
        if encoding == "utf-16" and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            continue
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_csv(path, required=(), dataset: str | None = None) -> tuple[list[str], list[tuple[int, dict]]]:
    """Read a CSV file with a header: ``(columns, [(line_number, row_dict), ...])``.

    Files written by other systems and tools are read as meant (see :func:`read_text`): any line endings,
    a BOM, UTF-16/Windows-1252/latin-1 text, blanks around names and values (stripped), backslash path
    separators (become ``/``), and empty trailing columns (a spreadsheet's ``,,``).

    Raises :class:`DataError` naming the file when it has no header or no data row, when ``required``
    columns are absent (naming them), or naming the line whose number of values differs from the header's.
    """
    import io

    path = _require_file(path, dataset)
    text = read_text(path, dataset)
    try:
        reader = csv.reader(io.StringIO(text), skipinitialspace=True)
        table = [(reader.line_num, [v.strip() for v in values]) for values in reader]
    except csv.Error as err:
        raise _corrupt(path, f"cannot parse the CSV ({err})", dataset) from err
    table = [(line, values) for line, values in table if any(values)]  # blank lines (or only commas)
    if not table:
        raise DataError(f"{path}: the file is empty; a pair list needs a header line and one line per pair")
    columns = table[0][1]
    while columns and not columns[-1]:
        columns = columns[:-1]
    missing = [c for c in required if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; the header is {columns}, expected {list(required)}. "
            f"Use the official pair list ({download_hint(dataset)})."
        )
    rows = []
    for line, values in table[1:]:
        while len(values) > len(columns) and not values[-1]:
            values = values[:-1]
        if len(values) != len(columns):
            raise DataError(f"{path}, line {line}: the number of values ({len(values)}) differs from the header's "
                            f"({len(columns)}: {', '.join(columns)})")
        rows.append((line, {c: v.replace("\\", "/") for c, v in zip(columns, values)}))
    if not rows:
        raise DataError(f"{path}: the header is there ({', '.join(columns)}) but no line follows it, so there "
                        "is nothing to evaluate; add the pairs (one per line) or use the official list "
                        f"({download_hint(dataset)})")
    return columns, rows


def parse_number(text, where: str) -> float:
    """``float(text)`` or a :class:`DataError` that says ``where`` (file, line, column)."""
    try:
        return float(str(text).strip())
    except (TypeError, ValueError):
        raise DataError(f"{where}: expected a number, got {text!r}") from None


def parse_numbers(text, where: str, sep: str = ";") -> np.ndarray:
    """``'1.5;2;3'`` -> ``array([1.5, 2., 3.])``, with errors that say ``where``."""
    parts = [p for p in str(text if text is not None else "").strip().split(sep) if p.strip()]
    return np.array([parse_number(p, where) for p in parts], dtype=np.float64)


def parse_pair_keypoints(row: dict, where: str) -> tuple[np.ndarray, ...]:
    """The ``XA, YA, XB, YB`` columns of a pair-list row (';'-separated) as four arrays of one length."""
    values = tuple(parse_numbers(row[c], f"{where}, column {c!r}") for c in ("XA", "YA", "XB", "YB"))
    if len({len(v) for v in values}) != 1:
        counts = [len(v) for v in values]
        raise DataError(f"{where}: XA, YA, XB, YB hold different numbers of values: {counts}")
    return values
