"""No import cycle among the package's modules, counting imports inside functions and the modules loaded by
name (``importlib.import_module``), read from the source with ``ast`` (nothing is imported)."""

import ast
from pathlib import Path

import macos_lite

PACKAGE = Path(macos_lite.__file__).parent

# Edges exempt from the rule: none (the sub-commands' shared helpers live in cli_common, below all of them).
ALLOWED: set[tuple[str, str]] = set()


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def _module_of(name: str, modules) -> str | None:
    """The longest package module that ``name`` (a module, or a name inside one) starts with."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) if parts else None


def _imports(module: str, path: Path, is_package: bool, modules) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    loads_by_name = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - (node.level - (1 if is_package else 0))]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            names += [prefix] + [f"{prefix}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and node.attr == "import_module":
            loads_by_name = True
    if loads_by_name:  # every string of the module that names a package module, alone or after an f-string prefix
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
        prefixes = [""] + [str(j.values[0].value) for j in ast.walk(tree) if isinstance(j, ast.JoinedStr)
                           and j.values and isinstance(j.values[0], ast.Constant)]
        names += [p + s for s in strings for p in prefixes if p + s in modules]
    found = {_module_of(n, modules) for n in names if n and n.split(".")[0] == "macos_lite"}
    return {m for m in found if m and m != module and not module.startswith(m + ".")}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, path, is_package, modules) for m, (path, is_package) in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1
        stack.append(root); on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]; counter[0] += 1
                    stack.append(w); on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop(); on_stack.discard(w); component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_the_cycle_finder_finds_a_hand_made_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_function_level_and_by_name_imports():
    graph = import_graph()
    assert "macos_lite.checkpoints" in graph["macos_lite.course"]  # imported inside trained_model()
    assert "macos_lite.train_cli" in graph["macos_lite.cli"]  # loaded by name from the COMMANDS table
    assert "macos_lite.data.pf_willow" in graph["macos_lite.data.registry"]  # f"macos_lite.data.{module}"


def test_no_import_cycle_among_the_package_modules():
    graph = {m: {t for t in targets if (m, t) not in ALLOWED} for m, targets in import_graph().items()}
    found = cycles(graph)
    assert not found, "import cycles (each line a set of modules that import each other): " + "; ".join(
        " <-> ".join(c) for c in found)
