"""The layout's rules, read from the source (ast): no module outside smplify/cli imports from it, and the
modules of smplify/ and priors/ import each other without cycles."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smplify", "priors")


def _modules() -> dict:
    """{dotted module name: path} of every module in the packages."""
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _imports(name: str, path: Path, top_level_only: bool) -> set:
    """Modules of our packages that ``name`` imports (module level only, or anywhere in it)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # imports under `if`/`try` at module level run at import time too
        nodes = [n for top in tree.body for n in ast.walk(top)
                 if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from pkg import module`
    return {m for m in out if m.split(".")[0] in PACKAGES}


def _graph(top_level_only: bool) -> dict:
    mods = _modules()
    return {n: {m for m in _imports(n, p, top_level_only) if m in mods and m != n} for n, p in mods.items()}


def test_no_module_outside_the_cli_imports_it():
    inside = lambda m: m == "smplify.cli" or m.startswith("smplify.cli.")
    bad = {n: sorted(m for m in deps if inside(m)) for n, deps in _graph(top_level_only=False).items()
           if not inside(n)}
    assert not {n: d for n, d in bad.items() if d}


def test_argparse_lives_only_in_the_cli():
    mods = _modules()
    users = sorted(n for n, p in mods.items() if "argparse" in {m.split(".")[0] for m in _all_imports(p)})
    allowed = ("smplify.cli",)
    assert [n for n in users if not n.startswith(allowed)] == []


def _all_imports(path: Path) -> set:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.add(node.module or "")
    return out


def test_no_import_cycles():
    """Module-level imports (what runs at import time) form no cycle (a package's __init__ importing its own
    submodules is not a cycle)."""
    g = _graph(top_level_only=True)
    for n in g:  # a submodule importing its package's names from __init__ is an edge to the package itself
        g[n] = {m for m in g[n] if not n.startswith(m + ".")}
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not cycles, cycles


def test_a_broken_subcommand_fails_loudly(monkeypatch):
    import sys

    import pytest

    from smplify import cli

    monkeypatch.setattr(cli, "SUBCOMMANDS", cli.SUBCOMMANDS + ("smplify.cli.no_such_command",))
    monkeypatch.delitem(sys.modules, "smplify.cli.no_such_command", raising=False)
    with pytest.raises(ImportError):
        cli.build_parser()
