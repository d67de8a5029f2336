"""The README a newcomer reads: every module of the package named in its module map, and short."""

import re
from pathlib import Path

import macos_lite

PACKAGE = Path(macos_lite.__file__).parent
README = PACKAGE.parent / "README.md"


def _module_map() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Module map")
    return text[start:text.index("\n## ", start + 1)]


def test_every_module_is_named_in_the_module_map():
    named = set(re.findall(r"`([A-Za-z_][\w.]*)`", _module_map()))
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.add(".".join(parts) or "macos_lite")
    missing = sorted(modules - named)
    assert not missing, f"README.md's module map does not name: {', '.join(missing)}"


def test_the_readme_is_short_and_links_its_results_and_equations():
    text = README.read_text(encoding="utf-8")
    assert len(text.split()) <= 2000
    for target in ("docs/results.md", "docs/equations.md"):
        assert f"({target})" in text and (README.parent / target).is_file()


def test_every_module_docstring_names_the_notebook_that_teaches_it():
    import ast

    silent = [str(p.relative_to(PACKAGE)) for p in sorted(PACKAGE.rglob("*.py"))
              if "notebook" not in (ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or "").lower()]
    assert not silent, f"module docstrings that name no notebook: {', '.join(silent)}"
