"""What citewise imports is what pyproject.toml declares.

`pip install -c constraints.txt '.[local,postgres,redis]'` once gave a citewise whose ingest
failed with "ImportError: lxml.html.clean module is now a separate project": constraints.txt
pinned lxml_html_clean, but nothing declared it, so nothing installed it.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "citewise"
# Extras for working on citewise, not for using it: what citewise imports must not hide here.
DEVELOPMENT_EXTRAS = {"dev", "bench"}

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, requirement
    return normalized(match.group(1))


def declared() -> dict[str, set[str]]:
    """Distribution names (normalized) per list: "dependencies" and each user-facing extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lists = {"dependencies": project["dependencies"]}
    lists |= {
        extra: requirements
        for extra, requirements in project.get("optional-dependencies", {}).items()
        if extra not in DEVELOPMENT_EXTRAS
    }
    return {name: {requirement_name(r) for r in reqs} for name, reqs in lists.items()}


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in src/citewise (lazy and optional imports too),
    outside the standard library and citewise itself, with the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in ("__future__", "citewise"):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_the_import_scan_sees_the_imports() -> None:
    modules = third_party_imports()
    # Top-level, lazy (inside functions) and optional (extras) imports alike.
    assert {"click", "rich", "trafilatura", "llama_cpp", "psycopg", "faster_whisper"} <= set(
        modules
    )
    assert "json" not in modules and "citewise" not in modules


def test_every_imported_module_comes_from_a_declared_distribution() -> None:
    every = set().union(*declared().values())
    installed = packages_distributions()
    missing = []
    for module, files in sorted(third_party_imports().items()):
        distributions = {normalized(d) for d in installed.get(module, [])}
        if not distributions:
            # Not installed here (an extra the test environment skips, or a Python-version
            # marker): its distribution must then carry the module's name.
            distributions = {normalized(module)}
        if not distributions & every:
            missing.append(
                f"{module} (from {', '.join(sorted(distributions))}) in {sorted(files)[0]}"
            )
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_lxml_html_clean_is_declared_and_imports() -> None:
    # Nothing in citewise imports it: trafilatura's jusText does, at import time.
    importlib.import_module("lxml.html.clean")
    importlib.import_module("trafilatura")
    assert "lxml-html-clean" in declared()["dependencies"]
    assert "trafilatura" in declared()["dependencies"]
