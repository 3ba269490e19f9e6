"""The package's architecture, as the README's table states it, holds in the code.

Every import between catdog's modules is read from the source (module-level
and function-level imports alike: a loop hidden in a function is still a
loop), and checked against the README's "Architecture" table: a module may
import only the layers its row names, and no module imports itself back
through others.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "catdog"


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name):
    """{catdog module imported by `name`: line number}, at any depth of its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = {}
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from catdog.training import distribute` imports a module
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        for target in targets:
            if target.split(".")[0] == "catdog" and target != name:
                found.setdefault(target, node.lineno)
    return found


def architecture_table():
    """The README's table: [(layer, [module patterns], [layers it may import])]."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("layer", "") or set(cells[0]) <= set("-: "):
            continue
        layer = cells[0].strip("*")
        patterns = re.findall(r"`([^`]+)`", cells[1])
        allowed = [a.strip() for a in cells[2].split(",") if a.strip()]
        rows.append((layer, patterns, allowed))
    return rows


def layer_of(module, rows):
    """The row whose patterns match `module` (`data/` = the sub-package, `model` = catdog/model.py)."""
    relative = module[len("catdog."):] if module != "catdog" else "__init__"
    matches = []
    for layer, patterns, _ in rows:
        for pattern in patterns:
            if pattern.endswith("/"):
                package = pattern.rstrip("/").replace("/", ".")
                if relative == package or relative.startswith(package + "."):
                    matches.append((len(pattern), layer))
            elif relative == pattern.replace("/", "."):
                matches.append((len(pattern), layer))
    return max(matches)[1] if matches else None


def test_the_readme_table_covers_every_module():
    rows = architecture_table()
    layers = [layer for layer, _, _ in rows]
    assert layers[:2] == ["foundation", "core"], layers
    for layer, _, allowed in rows:
        unknown = set(allowed) - set(layers) - {"everything"}
        assert not unknown, f"{layer} may import unknown layers {unknown}"
    orphans = [m for m in MODULES if layer_of(m, rows) is None]
    assert not orphans, f"modules in no row of the README's Architecture table: {orphans}"


def test_no_module_imports_a_layer_its_row_does_not_allow():
    rows = architecture_table()
    allowed = {layer: set(a) for layer, _, a in rows}
    breaches = []
    for module in MODULES:
        mine = layer_of(module, rows)
        if "everything" in allowed[mine]:
            continue
        for target, line in imports_of(module).items():
            theirs = layer_of(target, rows)
            if theirs not in allowed[mine] | {mine}:
                breaches.append(f"{module} ({mine}) imports {target} ({theirs}) at line {line}")
    assert not breaches, "\n".join(breaches)


def test_wings_are_ordered_no_wing_imports_one_above_it():
    """The rows are in order: each may import only rows above it (and itself)."""
    rows = architecture_table()
    order = [layer for layer, _, _ in rows]
    for position, (layer, _, allowed) in enumerate(rows):
        if "everything" in allowed:
            assert position == len(rows) - 1, "only the last row (the app) may import everything"
            continue
        above = set(order[: position + 1])
        assert set(allowed) <= above, f"{layer} may import {set(allowed) - above}, which sit below it"


def test_there_are_no_import_loops():
    graph = {module: set(imports_of(module)) & set(MODULES) for module in MODULES}
    # a package's __init__ runs before its modules: importing one imports it,
    # which is no loop; only edges between real modules count
    loops = _cycles(graph)
    assert not loops, "import loops: " + "; ".join(" -> ".join(loop + [loop[0]]) for loop in loops)


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


def _user_code():
    """(where, text) of what users copy: the README's Python blocks and the recipes."""
    readme = (ROOT / "README.md").read_text()
    for number, block in enumerate(re.findall(r"```python\n(.*?)```", readme, re.S), 1):
        yield f"README.md python block {number}", block
    for path in sorted((ROOT / "recipes").rglob("*.py")):
        yield f"recipes/{path.name}", path.read_text()


def test_readme_and_recipes_use_only_the_public_api():
    """`import catdog` and its `__all__`: no `catdog.<inner module>` in what users copy."""
    import catdog

    public = set(catdog.__all__) | {"__version__"}
    inner = []
    for where, text in _user_code():
        for match in re.finditer(r"\b(?:from|import)\s+(catdog\.[\w.]+)", text):
            inner.append(f"{where}: {match.group(1)}")
        for match in re.finditer(r"\bfrom catdog import \(?([\w, ]+)", text):
            names = {n.strip() for n in match.group(1).split(",") if n.strip()}
            inner += [f"{where}: catdog.{n}" for n in sorted(names - public)]
        for match in re.finditer(r"(?<![\w.])catdog\.(\w+)", text):
            if match.group(1) not in public:
                inner.append(f"{where}: catdog.{match.group(1)}")
    assert not inner, "inner modules used: " + "; ".join(sorted(set(inner)))


def test_the_public_api_resolves():
    """Every name in `catdog.__all__` imports, lazily, from the module `_EXPORTS` names."""
    import catdog

    for name in catdog.__all__:
        assert getattr(catdog, name) is not None, name


def test_the_data_layers_signatures_of_old_run_folders_are_run_folder_names():
    """`data.folders` cannot import the training wing, so it spells a few run-folder names itself."""
    from catdog.data.folders import _OUTPUT_SIGNATURES
    from catdog.training.run_folder import RUN_FILES

    assert set().union(*_OUTPUT_SIGNATURES) <= RUN_FILES
