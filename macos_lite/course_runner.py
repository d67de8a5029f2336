"""The headless course runner behind ``macos-lite course``: every notebook of ``notebooks/`` in order with
papermill into ``runs/<timestamp>/``, each rendered to HTML, and ``summary.md``/``summary.json``; also the
notebook hygiene the repository relies on (outputs stripped except the checked cells).

The notebooks' own helpers (``setup``, ``trained_model``) are in :mod:`macos_lite.course`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from . import paths
from .presets import PRESETS
from .strict_json import dumps

CHECKED_TAG = "nbval-check-output"


def course_notebooks(folder: str | Path = "notebooks") -> list[Path]:
    """The numbered course notebooks ``NN_*.ipynb`` of ``folder``, in order.

    Raises ``FileNotFoundError`` (naming the folder, the current folder and the fix) when ``folder`` is not
    there, e.g. when ``macos-lite course`` is started outside the repository root.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no notebooks folder {folder} in {Path.cwd()}; run `macos-lite course` from the "
                                "repository root (the folder holding notebooks/), or pass --notebooks DIR")
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def strip_outputs(nb, keep_checked: bool = True):
    """Remove outputs, execution counts and widget state (in place), except the outputs of cells tagged
    ``nbval-check-output`` (their stored outputs) when ``keep_checked``."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        if keep_checked and CHECKED_TAG in cell.metadata.get("tags", []):
            continue
        cell.outputs = []
        cell.execution_count = None
    for key in ("papermill",):
        nb.metadata.pop(key, None)
    return nb


def _failure(exc, executed: Path | None = None) -> str:
    """One line saying where and why a notebook failed.

    A failed cell carries its execution count. A dying kernel (``DeadKernelError``, e.g. killed when memory
    ran out) does not: the cell is then found in the executed notebook ``executed`` -- the code cell after the
    last one with an execution count -- and the likely cause is named.
    """
    cell = getattr(exc, "exec_count", None)
    name, value = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    value = " ".join(str(value).split())
    if cell is not None:
        return f"cell [{cell}]: {name}: {value}".strip()
    running, source = _last_execution_count(executed)
    dead = "DeadKernel" in name or "died" in value.lower()
    if running:
        where = f"while running cell [{running}]" + (f" ({source})" if source else "")
    else:
        where = "before any cell ran"
    if dead:
        return (f"the kernel died (DeadKernelError) {where}; the usual cause is running out of memory: try "
                "--preset smoke, or fewer threads (MACOS_LITE_THREADS=1), or close other programs")
    return f"{where}: {name}: {value}".strip()


def _last_execution_count(executed: Path | None) -> tuple[int, str]:
    """(number of the code cell that was running when the notebook stopped, its first line); (0, "") when no
    cell had started.

    The running cell is the last code cell papermill gave a start time; without papermill's metadata, the
    code cell after the last one with an execution count. Code cells are numbered from 1 in notebook order,
    which is their execution count in a run from the top.
    """
    if executed is None or not Path(executed).is_file():
        return 0, ""
    try:
        import nbformat

        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 -- a notebook cut short by the dying kernel: no cell to name
        return 0, ""
    code = [c for c in nb.cells if c.cell_type == "code"]
    started = [i for i, c in enumerate(code) if c.metadata.get("papermill", {}).get("start_time")]
    counted = [i for i, c in enumerate(code) if c.get("execution_count")]
    if started:
        index = started[-1]
    elif counted and counted[-1] + 1 < len(code):
        index = counted[-1] + 1
    else:
        return 0, ""
    lines = [line for line in code[index].source.splitlines() if line.strip()]
    return index + 1, (lines[0].strip()[:60] if lines else "")


def execute(notebook: Path, output: Path, parameters: dict, cwd: Path, timeout: int | None = None):
    """Run one notebook with papermill (kernel ``python3``); returns the executed notebook path."""
    import logging

    import papermill

    # papermill's own log lines (e.g. "Kernel died while waiting for execute reply") would break the
    # one-line-per-notebook progress; the failure is reported in the summary instead
    log = logging.getLogger("papermill")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name="python3",
                                   progress_bar=False, cwd=str(cwd), execution_timeout=timeout, log_output=False,
                                   # the kernel's start-up warnings would break the one-line progress too
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    finally:
        log.setLevel(level)
    return output


def _to_html(executed: Path, target: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    target.write_text(body)


def _last_figure(executed: Path, target: Path) -> bool:
    """Save the last PNG a notebook displayed (its key figure) to ``target``."""
    import base64

    import nbformat

    nb = nbformat.read(executed, as_version=4)
    for cell in reversed(nb.cells):
        for out in reversed(cell.get("outputs", [])):
            png = out.get("data", {}).get("image/png")
            if png:
                target.write_bytes(base64.b64decode(png))
                return True
    return False


def run_course(notebooks: str | Path = "notebooks", out: str | Path | None = None, preset: str | None = None,
               device: str = "auto", seed: int = 0, only: list[str] | None = None, html: bool = True,
               timeout: int | None = None, data_root: str | None = None) -> dict:
    """Execute every course notebook headless into ``out`` (default ``runs/<timestamp>``).

    Prints one line per notebook (and, on failure, the cell and the error), renders each executed notebook to
    HTML, saves its key figure, and writes ``summary.json`` and ``summary.md``. Returns the summary.
    """
    from .presets import resolve_preset

    preset = resolve_preset(preset)
    books = course_notebooks(notebooks)
    if not books:
        raise FileNotFoundError(f"{notebooks} holds no course notebooks (NN_name.ipynb); run from the repository "
                                "root, or pass --notebooks DIR")
    if only:
        chosen = [b for b in books if any(b.name.startswith(o) or b.stem == o for o in only)]
        unmatched = [o for o in only if not any(b.name.startswith(o) or b.stem == o for b in books)]
        if unmatched:
            raise ValueError(f"--only {' '.join(unmatched)}: no notebook of {notebooks} starts with "
                             f"{'this' if len(unmatched) == 1 else 'these'}; the notebooks are "
                             + ", ".join(b.stem for b in books))
        books = chosen
    out = Path(out) if out else paths.runs_root() / time.strftime("%Y%m%d-%H%M%S")
    from .cli_common import writable_folder

    writable_folder(out)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    print(f"running {len(books)} notebooks with preset {preset!r} into {out}", flush=True)
    rows = []
    previous_runs = os.environ.get(paths.RUNS_ENV)
    os.environ[paths.RUNS_ENV] = str(out.resolve())  # notebook 08's trained model is reused by 09-11
    try:
        for i, book in enumerate(books, 1):
            rows.append(_run_one(i, len(books), book, out, preset, device, seed, data_root, html, timeout))
    finally:
        if previous_runs is None:
            os.environ.pop(paths.RUNS_ENV, None)
        else:
            os.environ[paths.RUNS_ENV] = previous_runs
    summary = {"preset": preset, "device": device, "out": str(out), "notebooks": rows,
               "failed": [r["notebook"] for r in rows if r["status"] != "ok"]}

    (out / "summary.json").write_text(dumps(summary))
    (out / "summary.md").write_text(summary_markdown(summary))
    print(summary_markdown(summary, figures=False))
    return summary


def _run_one(i: int, n: int, book: Path, out: Path, preset: str, device: str, seed: int, data_root, html: bool,
             timeout) -> dict:
    print(f"[{i:2d}/{n}] {book.stem} ...", end=" ", flush=True)
    results_path = out / "results" / f"{book.stem}.json"
    params = {"PRESET": preset, "DEVICE": device, "SEED": seed, "RESULTS_PATH": str(results_path.resolve())}
    if data_root:
        params["DATA_ROOT"] = str(Path(data_root).resolve())
    start = time.perf_counter()
    row = {"notebook": book.stem, "status": "ok"}
    try:
        executed = execute(book, out / book.name, params, book.parent, timeout)
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell and the error
        executed = out / book.name
        row.update(status="failed", error=_failure(exc, executed))
    row["seconds"] = round(time.perf_counter() - start, 1)
    if html and executed.is_file():
        _to_html(executed, out / f"{book.stem}.html")
        if _last_figure(executed, out / "figures" / f"{book.stem}.png"):
            row["figure"] = f"figures/{book.stem}.png"
    if results_path.is_file():
        row["results"] = json.loads(results_path.read_text())
    print(f"{row['status']} in {row['seconds']:.0f} s" + (f" -- {row['error']}" if row["status"] != "ok" else ""),
          flush=True)
    return row


# the numbers a notebook's row shows in the summary, in this order (at most six); else its first numbers
_HEADLINE_KEYS = ("pck_identity", "pck_nn", "pck_affine", "pck_cascade", "pck_untrained", "pck_model", "pck",
                  "jaccard_identity", "jaccard_model", "jaccard", "precision", "pck_joint", "pck_matching_only",
                  "jaccard_joint", "jaccard_coseg_only", "grid_loss_first", "grid_loss_last", "loss_first", "loss_last")


def summary_markdown(summary: dict, figures: bool = True) -> str:
    """The results table (+ key figures) of a course run, as Markdown."""
    lines = [f"# Course run ({summary['preset']} preset)", "", "| notebook | status | time (s) | key results |",
             "|---|---|---|---|"]
    for row in summary["notebooks"]:
        res = row.get("results", {})
        keys = [k for k in _HEADLINE_KEYS if k in res][:6] or [k for k, v in res.items()
                                                          if isinstance(v, (int, float)) and k != "seed"][:4]
        shown = ", ".join(f"{k} {res[k]:.3f}" if isinstance(res[k], float) else f"{k} {res[k]}" for k in keys)
        status = row["status"] if row["status"] == "ok" else f"**{row['status']}**: {row.get('error', '')}"
        lines.append(f"| {row['notebook']} | {status} | {row['seconds']} | {shown} |")
    if figures:
        lines += ["", "## Key figures", ""]
        lines += [f"### {r['notebook']}\n\n![{r['notebook']}]({r['figure']})\n" for r in summary["notebooks"]
                  if "figure" in r]
    return "\n".join(lines) + "\n"


def refresh_checked_outputs(notebooks: str | Path = "notebooks", only: list[str] | None = None) -> list[Path]:
    """Maintainers: execute the notebooks in the ``smoke`` preset and store the outputs of the cells tagged
    ``nbval-check-output`` (the references nbval compares), everything else stripped."""
    import tempfile

    import nbformat

    changed = []
    for book in course_notebooks(notebooks):
        if only and not any(book.name.startswith(o) for o in only):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            executed = execute(book, Path(tmp) / book.name, {"PRESET": "smoke"}, book.parent)
            nb = nbformat.read(executed, as_version=4)
        source = nbformat.read(book, as_version=4)
        executed_cells = {c.get("id"): c for c in nb.cells}  # papermill inserts a cell: match by id
        for src_cell in source.cells:
            run_cell = executed_cells.get(src_cell.get("id"))
            if src_cell.cell_type == "code" and CHECKED_TAG in src_cell.metadata.get("tags", []) and run_cell:
                src_cell.outputs = [o for o in run_cell.outputs if o.get("output_type") != "display_data"]
                src_cell.execution_count = run_cell.execution_count
        nbformat.write(strip_outputs(source), book)
        changed.append(book)
    return changed


def add_arguments(p) -> None:
    p.add_argument("--preset", choices=tuple(PRESETS), help="default: $MACOS_LITE_PRESET, full on a GPU, "
                   "else demo")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--notebooks", default="notebooks", help="folder of the course notebooks")
    p.add_argument("--out", help="run folder (default runs/<timestamp>)")
    p.add_argument("--only", nargs="+", help="run only these notebooks (prefixes such as 00 04)")
    p.add_argument("--data-root", help="folder holding the real benchmarks (DATA_ROOT of the notebooks)")
    p.add_argument("--timeout", type=int, help="seconds per cell before a notebook is stopped")
    p.add_argument("--no-html", action="store_true", help="skip the HTML rendering")
    p.add_argument("--refresh-checked", action="store_true",
                   help="maintainers: store the outputs of the nbval-checked cells (smoke preset)")


def run(args) -> int:
    if args.refresh_checked:
        for book in refresh_checked_outputs(args.notebooks, args.only):
            print(f"refreshed {book}")
        return 0
    summary = run_course(args.notebooks, args.out, args.preset, args.device, args.seed, args.only,
                         html=not args.no_html, timeout=args.timeout, data_root=args.data_root)
    if summary["failed"]:
        print(f"{len(summary['failed'])} notebook(s) failed: {', '.join(summary['failed'])}; see {summary['out']}")
        return 1
    ran = len(summary["notebooks"])
    print(f"all {ran} notebook{'s' if ran != 1 else ''} ran; results in {summary['out']} (summary.md, *.html)")
    return 0
