"""The package's import graph (docs/DESIGN.md §2): which sub-package imports which at module level, with no
circle. ``python tests/test_import_graph.py [REPO]`` prints the table (and the function-local imports apart)."""
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# leaves any layer may use (DESIGN.md): not drawn as edges
LEAVES = {"fileio", "registry", "cli", "deprecation"}


def _top_level_nodes(tree: ast.Module):
    """Statements run at import (module body, and inside module-level if / try / with blocks), not in functions."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if isinstance(node, ast.ClassDef):
                todo += [n for n in node.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue                                    # annotations only: never run
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            todo += list(getattr(node, field, []) or [])


def package_graph(repo: Path = ROOT, local: bool = False) -> dict:
    """{sub-package: {sub-packages it imports}}; ``local``: function-local imports instead of module-level ones."""
    pkg_root = repo / "perception3d"
    graph: dict = {}
    for path in sorted(pkg_root.rglob("*.py")):
        rel = path.relative_to(repo).with_suffix("").parts
        if len(rel) < 3 and rel[-1] in LEAVES | {"__init__"}:
            continue                                    # the top-level leaves and perception3d/__init__
        me = rel[1]
        graph.setdefault(me, set())
        tree = ast.parse(path.read_text(), str(path))
        top = set(map(id, _top_level_nodes(tree)))
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or ((id(node) in top) == local) or \
                    id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif node.level:
                base = list(rel[:-1])[:len(rel) - 1 - node.level + 1] + ([node.module] if node.module else [])
                mods = [".".join(base)]
                if not node.module:
                    mods = [f"{mods[0]}.{a.name}" for a in node.names]
            else:
                mods = [node.module]
            for m in mods:
                parts = m.split(".")
                if parts[0] == "perception3d" and len(parts) > 1 and parts[1] not in LEAVES | {me}:
                    graph[me].add(parts[1])
    return graph


def find_cycle(graph: dict):
    """A list of packages forming a circle, or None."""
    state: dict = {}

    def visit(n, stack):
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m] if m in stack else [n, m]
            if m not in state:
                c = visit(m, stack + [m])
                if c:
                    return c
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n, [n])
            if c:
                return c
    return None


def table(graph: dict) -> str:
    rows = ["| package | imports (module level) |", "|---|---|"]
    for p in sorted(graph, key=lambda p: (len(graph[p]), p)):
        rows.append(f"| {p} | {', '.join(sorted(graph[p])) or 'nothing of the package'} |")
    return "\n".join(rows)


def test_no_import_circle_between_packages():
    graph = package_graph()
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_arrows_point_down():
    graph = package_graph()
    assert graph["sparse"] == set() and graph["ops"] == set()
    for low in ("sparse", "ops", "structures", "io"):
        assert not graph[low] & {"models", "rendering", "datasets", "evaluation", "engine", "apis"}, low
    for mid in ("models", "rendering", "datasets"):
        assert not graph[mid] & {"evaluation", "engine", "apis"}, mid


if __name__ == "__main__":
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    g = package_graph(repo)
    print(table(g))
    print("cycle:", find_cycle(g))
    loc = package_graph(repo, local=True)
    print("function-local:", {k: sorted(v - g[k]) for k, v in loc.items() if v - g.get(k, set())})
