"""Dependency direction and cold-start hygiene, checked on the source and in fresh processes."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SERVERS

HEAVY = ("torch", "sentence_transformers", "playwright", "transformers", "onnxruntime")
# Not loaded while a server starts either: the embedding encoder's libraries, and rich (the
# SDK imports it for a log handler that PAI's own stderr handler replaces).
NOT_AT_START = (*HEAVY, "rich", "tokenizers", "safetensors", "numpy")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _files(package_dir: Path) -> list[Path]:
    return [p for p in package_dir.rglob("*.py") if "node_modules" not in p.parts]


@pytest.mark.parametrize("name", SERVERS)
def test_servers_never_import_each_other(name: str) -> None:
    others = {f"pai_{other}" for other in SERVERS if other != name}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & others)
        for path in _files(ROOT / "servers" / name)
        if _imports(path) & others
    }
    assert offenders == {}


def test_core_never_imports_a_server() -> None:
    servers = {f"pai_{name}" for name in SERVERS}
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & servers)
        for path in _files(ROOT / "shared" / "pai_core")
        if _imports(path) & servers
    }
    assert offenders == {}


# A heavy package may be a base dependency only of the server whose job it is.
HEAVY_ALLOWED = {"verify": {"playwright"}}


def test_each_server_package_declares_only_core_among_pai_packages() -> None:
    import re
    import tomllib

    for name in SERVERS:
        meta = tomllib.loads((ROOT / "servers" / name / "pyproject.toml").read_text())
        deps = meta["project"]["dependencies"]
        pai_deps = [d for d in deps if d.startswith("pai-")]
        assert all(d.startswith("pai-core") for d in pai_deps), (name, pai_deps)
        names = {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0] for d in deps}
        heavy = (names & set(HEAVY)) - HEAVY_ALLOWED.get(name, set())
        assert not heavy, f"{name} must keep {heavy} in an extra, not its base dependencies"


@pytest.mark.parametrize("name", SERVERS)
def test_building_a_server_loads_no_heavy_module(name: str, pai_env: dict[str, str]) -> None:
    code = (
        "import json, sys\n"
        f"from pai_{name}.spec import SPEC\n"
        "from pai_core.settings import load_settings\n"
        "import logging\n"
        "SPEC.build(load_settings(SPEC.settings_cls()))\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {NOT_AT_START!r})\n"
        "handlers = [h.get_name() for h in logging.getLogger().handlers]\n"
        "print(json.dumps([loaded, handlers]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=pai_env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded, handlers = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == []
    assert handlers == ["pai-stderr"]  # records are redacted even without `pai serve`


def test_public_surface_of_core_modules_exists() -> None:
    import importlib

    core = ROOT / "shared"
    for path in sorted((core / "pai_core").rglob("*.py")):
        parts = path.relative_to(core).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if parts[-1] == "__init__" and len(parts) > 2:
            continue  # a subpackage's __init__ only describes it (pai_core.memory.graph)
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        missing = [n for n in exported if not hasattr(module, n)]
        assert missing == [], (name, missing)


# What pai_core (the memory included) may import beyond the standard library: its declared
# dependencies and the SDK's HTTP client, nothing heavy, so every server can link the memory
# without a model or a browser.
CORE_DEPENDENCIES = {
    "mcp",
    "mcp_types",  # the SDK's protocol types, a distribution of their own since 2.3
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "uvicorn",
    "starlette",
    "anyio",
    "typer",
    "httpx2",
    "yaml",
    "pai_core",
}


# Optional backends of the memory (extras of pai-core), imported only inside the function that
# opens them, when configuration chooses them.
CORE_OPTIONAL = {"neo4j", "qdrant_client", "redis"}


def _module_level_imports(path: Path) -> set[str]:
    """Imports that run when the module is imported (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    nodes: list[ast.AST] = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            nodes.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        nodes.extend(ast.iter_child_nodes(node))
    return found


def test_core_imports_only_the_standard_library_and_its_light_dependencies() -> None:
    light = CORE_DEPENDENCIES | set(sys.stdlib_module_names)
    offenders = {
        str(path.relative_to(ROOT)): sorted(extra)
        for path in _files(ROOT / "shared" / "pai_core")
        if (
            extra := (_module_level_imports(path) - light)
            | (_imports(path) - light - CORE_OPTIONAL)
        )
    }
    assert offenders == {}


def test_importing_the_memory_package_loads_none_of_its_layers(pai_env: dict[str, str]) -> None:
    code = (
        "import sys, pai_core.memory\n"
        "print(sorted(m for m in sys.modules if m.startswith('pai_core.memory.') "
        "or m in ('sqlite3', 'yaml')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=pai_env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_stdio_front_imports_only_the_standard_library() -> None:
    # It answers before the SDK or pydantic load; importing either would undo it.
    front = ROOT / "shared" / "pai_core" / "fastfront.py"
    assert _imports(front) - set(sys.stdlib_module_names) == set()


# What only pai_core.sdkseam may touch: the SDK's private attributes and modules PAI reaches.
SDK_INTERNALS = ("._tool_manager", "._lowlevel_server", "._tools", "mcpserver import server")


def test_sdk_internals_are_touched_only_in_the_seam() -> None:
    offenders = {
        str(path.relative_to(ROOT)): touched
        for base in (ROOT / "shared", ROOT / "servers")
        for path in _files(base)
        if path.name != "sdkseam.py"
        and (touched := [s for s in SDK_INTERNALS if s in path.read_text()])
    }
    assert offenders == {}
