"""The architecture holds: imports go one way, and the vocabulary is defined once.

The import contracts live in ``pyproject.toml`` ([tool.importlinter]); these tests run them on
the real tree, show that they break on a wrong-way import, and scan the code for a second
definition of an entity list, a run tag, the priorities or the row counters.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradeos_pipelines.core import vocabulary

ROOT = Path(__file__).resolve().parents[1]
VOCABULARY = ROOT / "tradeos_pipelines" / "core" / "vocabulary.py"
CONTRACTS = 6


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )


def test_every_import_contract_is_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {CONTRACTS} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "broken", "count"),
    [
        # A 1C protocol writing the database itself.
        (
            "tradeos_pipelines/sources/common/values.py",
            "import tradeos_pipelines.storage.tables",
            "The 1C protocols import neither the database nor Dagster BROKEN",
            2,  # and the layers: the protocols and storage are independent
        ),
        # The engine reaching up into the Dagster definitions.
        (
            "tradeos_pipelines/engine/result.py",
            "import tradeos_pipelines.defs.partitions",
            "The engine imports neither Dagster nor the sidecar BROKEN",
            3,  # and the layers, and the sidecar's contract (it imports the engine)
        ),
        # The sidecar loading the code location.
        (
            "api/core/slugs.py",
            "import tradeos_pipelines.definitions",
            "The sidecar does not import the Dagster definitions BROKEN",
            2,  # and the layers: the sidecar and the code location are independent
        ),
        # The vocabulary depending on a layer above it.
        (
            "tradeos_pipelines/core/vocabulary.py",
            "import tradeos_pipelines.event_bus",
            "storage → event bus → core BROKEN",
            1,
        ),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path, module, wrong_import, broken, count):
    for part in ("tradeos_pipelines", "api"):
        shutil.copytree(
            ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "static")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode == 1, result.stdout
    assert broken in " ".join(result.stdout.split())
    assert f"Contracts: {CONTRACTS - count} kept, {count} broken." in result.stdout


# ----- one vocabulary ----------------------------------------------------------------------
ENTITY_NAMES = set(vocabulary.ENTITIES)
RUN_TAGS = {
    vocabulary.TAG_INTEGRATION,
    vocabulary.TAG_ENTITY,
    vocabulary.TAG_LANE,
    vocabulary.TAG_FULL,
    vocabulary.TAG_SOURCE,
    vocabulary.TAG_REQUEST,
}
PRIORITY_KEYS = set(vocabulary.PRIORITY)
COUNTERS = set(vocabulary.ROW_COUNTERS)


def _strings(nodes: list[ast.expr | None]) -> set[str]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def second_definitions(source: str) -> list[str]:
    """What in ``source`` spells out a piece of the vocabulary again (empty when nothing)."""
    found = []
    tree = ast.parse(source)
    # The elements of a Literal[...] are judged as the Literal, not again as a tuple.
    literal_slices = {
        id(node.slice)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal")
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("Literal"):
            elements = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if ENTITY_NAMES & _strings(list(elements)):
                found.append(f"line {line}: an entity Literal")
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and id(node) not in literal_slices:
            if _strings(list(node.elts)) >= ENTITY_NAMES:
                found.append(f"line {line}: the entity names listed")
            if _strings(list(node.elts)) >= COUNTERS:
                found.append(f"line {line}: the row counters listed")
        elif isinstance(node, ast.Dict):
            keys = _strings(list(node.keys))
            if keys >= COUNTERS:
                found.append(f"line {line}: the row counters as keys")
            if keys >= PRIORITY_KEYS:
                found.append(f"line {line}: the run priorities")
        elif isinstance(node, ast.ClassDef):
            fields = {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
            if fields >= COUNTERS:
                found.append(f"line {line}: the row counters as fields of {node.name}")
        elif isinstance(node, ast.Constant) and node.value in RUN_TAGS:
            found.append(f"line {line}: the run tag {node.value!r}")
    return found


def product_modules() -> list[Path]:
    """The product's Python modules, but for the vocabulary itself, the migrations (the
    schema's history must not change) and the emulators (they play 1C, not TradeOS)."""
    paths = [*ROOT.glob("tradeos_pipelines/**/*.py"), *ROOT.glob("api/**/*.py")]
    return sorted(
        p
        for p in paths
        if p != VOCABULARY and "migrations" not in p.parts and "emulators" not in p.parts
    )


def test_the_vocabulary_is_defined_once():
    found = {
        str(path.relative_to(ROOT)): hits
        for path in product_modules()
        if (hits := second_definitions(path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('Entity = Literal["nomenclature", "stock", "orders"]', ["line 1: an entity Literal"]),
        ('KINDS = ("orders", "stock", "nomenclature")', ["line 1: the entity names listed"]),
        ('TAG = "tradeos/lane"', ["line 1: the run tag 'tradeos/lane'"]),
        (f"P = {dict(vocabulary.PRIORITY)!r}", ["line 1: the run priorities"]),
        (
            "class Counts:\n" + "".join(f"    {c}: int\n" for c in vocabulary.ROW_COUNTERS),
            ["line 1: the row counters as fields of Counts"],
        ),
        ("from x import ROW_COUNTERS\nfields = list(ROW_COUNTERS)", []),
    ],
)
def test_the_scan_finds_a_second_definition(source, expected):
    assert second_definitions(source) == expected
