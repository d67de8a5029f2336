"""Result tables laid out like the slides' tables: the paper's rows beside this run's.

Both renderers take the summary of :func:`macos_lite.evaluation.evaluate_dataset` (or the JSON file the
``evaluate`` command writes, read back with ``json.load``):

* :func:`format_text` -- plain text for the terminal;
* :func:`to_markdown` -- Markdown tables for notebooks (``IPython.display.Markdown``) and READMEs.

Values are rendered as the paper prints them: PF-PASCAL and SPair-71k in %, the others as fractions.
The rows of the paper shown are MaCoSNet ("Ours") and a few strong peers (``peers=`` to choose).
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

from . import paper
from .metrics import NORMALIZERS


@dataclass
class Block:
    """One table: a title, a header, rows of already formatted cells, and notes printed below it."""

    title: str
    header: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _fmt(value, decimals: int, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    v = 100.0 * value if percent else value
    text = f"{v:.{decimals}f}"
    if v != 0 and float(text) == 0:  # e.g. J = 0.0004 in the Internet table
        text = f"{v:.1g}"
    return text


def _method_label(summary: dict) -> str:
    m = summary.get("method", {})
    name = m.get("name", "this run")
    return name if name == "identity" else f"{name} ({m.get('kind', '?')})"


def _alpha_key(alpha: float) -> str:
    return f"{alpha:g}"


def _our_rows(table: paper.Table, summary: dict) -> list[tuple[str, dict]]:
    """This run's values keyed like ``table.keys``, one row per normaliser (or per variant)."""
    label = f"this run: {_method_label(summary)}"
    if table.key in ("pf-pascal", "pf-willow", "spair"):
        a = None if table.alpha is None else _alpha_key(table.alpha)
        rows = []
        for norm, pck in summary["pck_by_normalizer"].items():
            values = dict(pck)
            if a is not None:
                values["mean"] = pck.get(a)
                values.update({c: v.get(a) for c, v in summary["per_class_by_normalizer"][norm].items()})
            rows.append((f"{label} [{norm}]", values))
        return rows
    if table.key == "tss":
        a = _alpha_key(summary["alpha"])
        full, no_flip = summary, summary["without_flip"]
        return [(label, {**full["per_class"], "avg": full["pck"][a]}),
                (f"{label}, w/o flip", {**no_flip["per_class"], "avg": no_flip["pck"][a]})]
    seg = summary["cosegmentation"] if table.key == "tss-coseg" else summary
    values = {"avg/P": seg["precision"], "avg/J": seg["jaccard"]}
    for group, v in seg["per_class"].items():
        values.update({f"{group}/P": v["precision"], f"{group}/J": v["jaccard"]})
    return [(label, values)]


def _paper_block(table: paper.Table, summary: dict, peers=None) -> Block:
    shown = [*(table.peers if peers is None else peers), "Ours"]
    header = ["Method", *table.meta_columns, *table.columns]
    rows = []
    for method in shown:
        for row in table.rows_of(method):
            cells = [_fmt(v, d) for v, d in zip(row.values, table.decimals, strict=True)]
            rows.append([f"paper: {row.method}", *row.meta, *cells])
    for label, values in _our_rows(table, summary):
        cells = [_fmt(values.get(k), d, table.percent) for k, d in zip(table.keys, table.decimals, strict=True)]
        rows.append([label, *([""] * len(table.meta_columns)), *cells])
    notes = [table.notes + (f" Paper's normaliser: {table.normalizer}." if table.normalizer in NORMALIZERS else "")]
    if table.key in ("tss-coseg", "internet"):
        notes.append(_coseg_note(summary["cosegmentation"] if table.key == "tss-coseg" else summary))
    return Block(f"{table.title}: {table.metric}", header, rows, notes)


def _coseg_note(seg: dict) -> str:
    return (f"This run: {seg['num_images']} images, {seg['num_empty_gt']} with empty ground truth "
            f"({'skipped in' if seg['empty_gt'] == 'skip' else 'scored in'} J).")


def _matching_block(summary: dict) -> list[Block]:
    alphas = [_alpha_key(a) for a in summary["alphas"]]
    label = _method_label(summary)
    rows = [[f"{label} [{n}]", *(_fmt(v.get(a), 3) for a in alphas)] for n, v in summary["pck_by_normalizer"].items()]
    per_class = [[c, *(_fmt(v.get(a), 3) for a in alphas), str(summary["num_pairs_per_class"].get(c, ""))]
                 for c, v in summary["per_class"].items()]
    per_class.append(["mean over classes", *(_fmt(summary["mean_over_classes"].get(a), 3) for a in alphas), ""])
    return [Block(f"Keypoint PCK ({summary['num_pairs']} pairs, {summary['direction']})",
                  ["Method [normaliser]", *(f"alpha = {a}" for a in alphas)], rows),
            Block(f"Per class [{summary['normalizer']}]", ["Class", *(f"alpha = {a}" for a in alphas), "pairs"],
                  per_class)]


def _coseg_block(seg: dict, summary: dict) -> Block:
    groups = list(seg["per_class"])
    header = ["Method", *(f"{g} {m}" for g in groups for m in ("P", "J")), "Avg. P", "Avg. J"]
    cells = [_fmt(seg["per_class"][g][k], 3) for g in groups for k in ("precision", "jaccard")]
    row = [_method_label(summary), *cells, _fmt(seg["precision"], 3), _fmt(seg["jaccard"], 3)]
    return Block("Co-segmentation: P (pixel accuracy) / J (foreground IoU)", header, [row], [_coseg_note(seg)])


def blocks(summary: dict, peers=None) -> list[Block]:
    """The tables of a summary: the paper's tables with this run's rows, or this run's own tables for
    the datasets the paper does not report (synthetic, Weizmann Horse). ``peers``: paper rows to show
    beside "Ours" (default: each table's ``peers``)."""
    tables = paper.tables_for(summary["dataset"])
    if tables:
        return [_paper_block(t, summary, peers) for t in tables]
    out = _matching_block(summary) if "pck_by_normalizer" in summary else []
    if "precision" in summary:
        out.append(_coseg_block(summary.get("cosegmentation", summary), summary))
    return out


def _header_lines(summary: dict) -> list[str]:
    unscored = summary.get("num_without_keypoints") or 0
    pairs = f"{summary.get('num_pairs', '?')} pairs" + (f" ({unscored} without a scorable keypoint)" if unscored else "")
    first = (f"{summary['dataset']} ({summary.get('split')}), {pairs}, "
             f"method {_method_label(summary)}, {summary.get('seconds', float('nan')):.1f} s")
    return [first, *textwrap.wrap(summary.get("protocol", ""), 110)]


def format_text(summary: dict, peers=None) -> str:
    """Plain-text tables with aligned columns (numbers right-aligned)."""
    lines = _header_lines(summary)
    for block in blocks(summary, peers):
        table = [block.header, *block.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(block.header))]
        lines += ["", block.title]
        for k, r in enumerate(table):
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += [line for note in block.notes for line in textwrap.wrap(note, 110)]
    return "\n".join(lines)


def to_markdown(summary: dict, peers=None) -> str:
    """The same tables in Markdown."""
    lines = [f"**{_header_lines(summary)[0]}**", "", summary.get("protocol", "")]
    for block in blocks(summary, peers):
        lines += ["", f"*{block.title}*", "", "| " + " | ".join(block.header) + " |",
                  "|" + "|".join(["---"] + ["---:"] * (len(block.header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in block.rows]
        lines += ["", *block.notes]
    return "\n".join(lines)
