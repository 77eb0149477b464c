"""The tree is the architecture: no import circle anywhere in bot/ (module- and function-level imports, a package's
`__init__` and its own modules included), and no module past the size a newcomer can read."""
from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"
MAX_LINES = 800
LONG_ALLOWED = {"bot/wording.py"}  # the policy texts stay together (DEVELOPERS: "wording may stay together")


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `root` (a package is its `__init__.py`)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body. `from pkg import name` counts as importing
    `pkg.name` when that is a module, else `pkg` (its `__init__`)."""

    def known(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(t for a in node.names if (t := known(a.name)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in mods else known(base)
                    if target:
                        edges.add(target)
        edges.discard(mod)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_bot_has_no_import_circle():
    graph = imports(modules(BOT))
    assert cycles(graph) == []


def test_the_checker_finds_a_circle_through_a_function_level_import_and_a_package_init(tmp_path):
    # The checker itself must be able to fail: a package whose __init__ imports a module that imports the
    # package back inside a function, and two modules that import each other.
    pkg = tmp_path / "bot" / "pkg"
    pkg.mkdir(parents=True)
    (tmp_path / "bot" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from bot.pkg import a\n\ndef helper():\n    pass\n")
    (pkg / "a.py").write_text("def f():\n    from bot.pkg import helper\n    return helper\n")
    (tmp_path / "bot" / "x.py").write_text("from bot import y\n")
    (tmp_path / "bot" / "y.py").write_text("def g():\n    from . import x\n")
    found = cycles(imports(modules(tmp_path / "bot")))
    assert sorted(found) == [["bot.pkg", "bot.pkg.a"], ["bot.x", "bot.y"]]


def test_no_module_is_past_the_size_a_newcomer_reads():
    repo = BOT.parent
    long = {str(p.relative_to(repo)): n for p in BOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert set(long) <= LONG_ALLOWED, long


def test_the_domain_packages_are_where_the_architecture_says():
    # ARCHITECTURE.md pins these paths; a move that forgets it fails here.
    text = (BOT.parent / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for package in ("request", "controls", "audit", "oversight", "store", "cli", "faces", "slack"):
        assert (BOT / package / "__init__.py").is_file()
        assert f"`bot/{package}/" in text, package
    pinned = {p for p in __import__("re").findall(r"`(bot/[\w/]+\.py)`", text)}
    missing = sorted(p for p in pinned if not (BOT.parent / p).is_file())
    assert missing == []
