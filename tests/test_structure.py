"""The package's shape: no import cycle, pieces below the host code, configs load without JAX."""
import ast
import subprocess
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "scl"
CONFIGS = sorted((PACKAGE.parent / "configs").glob("*.yaml"))

# pieces: what a config section names; they may import the options helpers, errors, the registry
# and low-level helpers, never the experiment config, the engine or the host code
PIECES = ["scl.data.", "scl.families.", "scl.metrics.", "scl.mixing.", "scl.curation", "scl.correction",
          "scl.correction_histogram", "scl.rewards"]
HOST = {"scl.config", "scl.engine", "scl.simulate", "scl.cli", "scl.checkpoint", "scl.results",
        "scl.catalog", "scl.grid", "scl.devices", "scl.plots", "scl.samples", "scl.summary", "scl.phase"}


def modules() -> dict:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = f
    return out


def import_graph() -> dict:
    """{module: {scl modules it imports}}, module-level and function-level imports alike (a
    package's __init__ re-exporting its own children does not count as importing them)."""
    mods = modules()
    graph = {}
    for name, f in mods.items():
        is_pkg = f.name == "__init__.py"
        targets = set()
        for node in ast.walk(ast.parse(f.read_text())):
            found = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
                found = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in found:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not (is_pkg and t.startswith(name + ".")):
                    targets.add(t)
        graph[name] = targets
    return graph


def find_cycle(graph: dict):
    """A list of modules forming a cycle, or None."""
    state, stack = {}, []

    def visit(v):
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_pieces_never_import_the_host_code():
    graph = import_graph()
    bad = [(m, t) for m, targets in graph.items() if any(m.startswith(p) or m == p for p in PIECES)
           for t in targets if t in HOST]
    assert not bad, bad


def test_registry_imports_nothing_of_scl():
    assert import_graph()["scl.registry"] == set()


def test_loading_any_config_leaves_jax_unstarted():
    """Validation builds no runtime object, so ``scl run`` can still split the CPU afterwards:
    every file in configs/ is loaded (with its static variants) in one fresh process."""
    assert len(CONFIGS) >= 10
    code = (
        "import sys, scl\n"
        "from jax._src import xla_bridge\n"
        "for path in sys.argv[1:]:\n"
        "    scl.load_config(path).static_variants()\n"
        "    print(path, xla_bridge.backends_are_initialized())\n")
    out = subprocess.run([sys.executable, "-c", code, *map(str, CONFIGS)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")[:-1]
    assert len(lines) == len(CONFIGS) and all(line.endswith(" False") for line in lines), out.stdout


def test_import_scl_leaves_jax_lowering_unchanged():
    """``import scl`` registers nothing in JAX; the unrolled threefry comes with the first program."""
    code = ("import scl, scl.engine\n"
            "from scl import rng\n"
            "print(rng.unrolled_registered())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
