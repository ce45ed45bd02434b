"""The house in wings, read from the source with `ast`: no two files import each other, directly
or around a loop; no wing imports a wing above it in pipelines.WINGS; the shared modules import
no wing; nothing in pipelines/ imports flows/. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pipelines
from pipelines.paths import PACKAGE_ROOT

Graph = dict[str, set[str]]


def module_files(root: Path, packages: tuple[str, ...] = ("pipelines", "flows")) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the packages."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name an import in the file may refer to, relative imports resolved."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path) -> Graph:
    """Module -> the project's modules it imports (the longest known prefix of each name)."""
    files = module_files(root)
    graph: Graph = {}
    for module, path in files.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def circles(graph: Graph) -> list[list[str]]:
    """Groups of modules that import each other around a loop (Tarjan's strongly connected
    components with more than one member)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return found


def level_of(module: str, wings: tuple[str, ...]) -> int | None:
    """0 for the top wing, len(wings) for the shared modules, None outside pipelines/."""
    parts = module.split(".")
    if parts[0] != "pipelines":
        return None
    if len(parts) > 1 and parts[1] in wings:
        return wings.index(parts[1])
    return len(wings)


def upward_imports(graph: Graph, wings: tuple[str, ...]) -> list[str]:
    """Imports from a module of pipelines/ to one above its own wing, or to flows/."""
    wrong = []
    for module, targets in sorted(graph.items()):
        level = level_of(module, wings)
        if level is None:
            continue
        for target in sorted(targets):
            target_level = level_of(target, wings)
            if target_level is None or target_level < level:
                wrong.append(f"{module} imports {target}")
    return wrong


# --- the project itself ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE_ROOT)


def test_no_files_import_each_other_around_a_loop(graph: Graph) -> None:
    assert circles(graph) == []


def test_no_wing_imports_a_wing_above_it_and_the_shared_modules_import_no_wing(
    graph: Graph,
) -> None:
    assert upward_imports(graph, pipelines.WINGS) == []


def test_the_wings_in_the_order_are_the_packages_there_are() -> None:
    packages = {path.parent.name for path in (PACKAGE_ROOT / "pipelines").glob("*/__init__.py")}
    assert packages == set(pipelines.WINGS)
    top = {path.stem for path in (PACKAGE_ROOT / "pipelines").glob("*.py")} - {"__init__"}
    assert top == set(pipelines.SHARED)


@pytest.mark.parametrize(
    "package",
    ["pipelines", *(f"pipelines/{wing}" for wing in pipelines.WINGS), "flows", "flows/cli"],
)
def test_every_package_says_what_it_holds_and_what_it_may_import(package: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE_ROOT / package / "__init__.py").read_text()))
    assert docstring, f"{package}/__init__.py has no docstring"
    assert 2 <= len(docstring.splitlines()) <= 4, docstring
    if package.startswith("pipelines/"):
        assert "May import" in docstring, docstring


# --- the checks catch what they are for ----------------------------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in ("pipelines", "flows"):
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_a_loop_through_three_files_and_a_lazy_import_is_found(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pipelines/data/__init__.py": "",
            "pipelines/data/a.py": "from pipelines.data import b\n",
            "pipelines/data/b.py": "from . import c\n",
            "pipelines/data/c.py": "def f():\n    from pipelines.data.a import thing\n",
            "flows/x.py": "import flows.y\n",
            "flows/y.py": "from flows import x\n",
        },
    )
    assert circles(import_graph(root)) == [
        ["flows.x", "flows.y"],
        ["pipelines.data.a", "pipelines.data.b", "pipelines.data.c"],
    ]


def test_an_import_from_a_lower_wing_to_a_higher_one_is_found(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path,
        {
            "pipelines/config.py": "from pipelines.data import sources\n",
            "pipelines/data/__init__.py": "",
            "pipelines/data/sources.py": "def f():\n    from pipelines.scoring import batches\n",
            "pipelines/scoring/__init__.py": "",
            "pipelines/scoring/batches.py": "from pipelines.data import sources\nimport flows.cli",
            "flows/cli.py": "from pipelines.scoring import batches\n",
        },
    )
    assert upward_imports(import_graph(root), ("scoring", "data")) == [
        "pipelines.config imports pipelines.data",
        "pipelines.config imports pipelines.data.sources",
        "pipelines.data.sources imports pipelines.scoring",
        "pipelines.data.sources imports pipelines.scoring.batches",
        "pipelines.scoring.batches imports flows.cli",
    ]


def test_no_two_test_modules_share_a_file_name() -> None:
    """Test folders have no __init__.py, so pytest imports each test module by its file name:
    two with the same name stop the whole run at collection ("import file mismatch")."""
    names: dict[str, list[str]] = {}
    for path in sorted((PACKAGE_ROOT / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(PACKAGE_ROOT)))

    assert {name: paths for name, paths in names.items() if len(paths) > 1} == {}
