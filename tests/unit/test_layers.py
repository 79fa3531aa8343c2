"""The package layout shows the layers, and imports point down them only (design.md, "Architecture")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ghcr_janitor"
# Bottom to top: a module may import its own layer and the ones before it, never a later one.
LAYERS = ["core", "policy", "plan", "net", "stores", "inventory", "apply", "engine", "report", "cli"]


def runtime_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every `from ghcr_janitor.X ...` not under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(sub) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for sub in ast.walk(node)}
    return [(node.lineno, node.module) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ghcr_janitor.")
            and id(node) not in typing_only]


def test_every_module_lives_in_a_layer():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py"]
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name not in ("__pycache__", "policies"))
    assert folders == sorted(LAYERS)


def test_imports_point_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer not in LAYERS:
            continue
        for line, module in runtime_imports(path):
            target = module.split(".")[1]
            if target in LAYERS and LAYERS.index(target) > LAYERS.index(layer):
                wrong.append(f"{path.relative_to(PACKAGE)}:{line}: {layer} imports {module}")
    assert wrong == []


def test_stores_do_not_import_each_other():
    """Each store is a fact-gatherer and an actor of its own; what they share lives in net/ or core/,
    in `stores/base.py` (the protocol), `stores/reads.py` (own reads that must not count as pulls), or
    the plain OCI store, whose `/v2` every vendor store reads through (`stores/oci/side.py`)."""
    wrong = []
    for path in sorted((PACKAGE / "stores").rglob("*.py")):
        parts = path.relative_to(PACKAGE / "stores").parts
        if len(parts) < 2:
            continue
        for line, module in runtime_imports(path):
            bits = module.split(".")
            if len(bits) > 3 and bits[1] == "stores" and bits[2] not in (parts[0], "base", "reads", "oci") and parts[0] != "ghcr":
                wrong.append(f"stores/{'/'.join(parts)}:{line}: imports {module}")
    assert wrong == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_no_module_imports_one_that_imports_it_back():
    """No import cycles, even through an import inside a function (review.md: plan/file <-> plan/model)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ghcr_janitor"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("ghcr_janitor"))
        # A package's __init__ re-exporting its own modules is not a cycle worth naming.
        graph[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                path = stack + [node]
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    assert cycles == []


def test_nothing_above_the_stores_imports_httpx():
    """Errors are mapped to core.errors at the store boundary (net/ and stores/ talk httpx; the layers
    above catch JanitorError only)."""
    above = LAYERS[LAYERS.index("stores") + 1:] + ["core", "policy", "plan"]
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] not in above:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            wrong += [f"{rel}:{node.lineno}: imports {n}" for n in names if n.split(".")[0] in ("httpx", "httpcore")]
    assert wrong == []
