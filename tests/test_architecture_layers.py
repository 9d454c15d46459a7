"""The floors of vda_lightning/: no module imports from a floor above its own.

The order is read from docs/architecture.md ("## Floors"), so the drawing and this test are one list. A module's
floor is its package (`vda_lightning/io/depth.py` -> io) or, for a top-level module, its own name
(`vda_lightning/viz.py` -> viz). Above every floor stand the commands: the modules the command table names
(`Command("module:function", ...)` in vda_lightning/cli/) and the `python -m` entries (`__main__.py`); they may
import any floor, and no floor may import them.

Which imports count: ALL of them, read with `ast` from the source, wherever they stand — at module level, inside
functions (the way the old back edges hid), in `if TYPE_CHECKING:` blocks (an annotation naming an upper floor's
type is written against that floor all the same) and in try/except. A name taken from the package's face
(`from vda_lightning import load_model`) counts as an import of the module the face hands it on from (its
`_EXPORTS`); a constant of the face itself (`__version__`) is no dependency. What `importlib` loads from a string
(the command table, the lazy exports of a package's own submodules) is not an import and is not read.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vda_lightning"
DOC = REPO / "docs" / "architecture.md"
ROOF = "commands"


@dataclass(frozen=True)
class Import:
    path: str      # the importing file, relative to the repository
    line: int
    text: str      # the statement as written (ast.unparse)
    target: str    # the dotted module it reaches
    in_function: bool
    type_checking: bool


def doc_floors(text: str) -> list[str]:
    """The floors, bottom first, from the first fenced block under "## Floors": names joined by `<`, packages
    written `io/`, top-level modules `viz.py`."""
    section = re.search(r"^## Floors\b.*?^```[a-z]*\n(.*?)^```", text, re.S | re.M)
    assert section, f"{DOC}: no fenced floor list under a '## Floors' heading"
    return [name.strip().removesuffix("/").removesuffix(".py") for name in section.group(1).split("<")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def command_modules(package: Path = PACKAGE) -> set[str]:
    """Every module the command table names (`Command("vda_lightning.x:main", ...)` in cli/)."""
    found = set()
    for path in (package / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Command" and node.args
                    and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).startswith("vda_lightning")):
                found.add(node.args[0].value.split(":")[0])
    return found


def face_exports(package: Path = PACKAGE) -> dict[str, str]:
    """The package face's lazy names -> the module that defines each (`_EXPORTS` in vda_lightning/__init__.py)."""
    for node in ast.parse((package / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_EXPORTS":
            return {name: f"vda_lightning.{where}" for name, where in ast.literal_eval(node.value).items()}
    raise AssertionError("vda_lightning/__init__.py: no _EXPORTS table")


def _guarded_by_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def imports_of(module: str, path: str, source: str, is_package: bool, known: set[str],
               exports: dict[str, str]) -> list[Import]:
    """Every import of a vda_lightning module in `source`, wherever it stands."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in _targets(node, module, is_package, known, exports):
                found.append(Import(path, node.lineno, ast.unparse(node), target, in_function, type_checking))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda),
                  type_checking or (isinstance(node, ast.If) and _guarded_by_type_checking(node)
                                    and child in node.body))

    visit(ast.parse(source), False, False)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str],
             exports: dict[str, str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
        return [n for n in names if n.startswith("vda_lightning.")]
    if node.level:  # relative: climb from the importing module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    if source != "vda_lightning" and not source.startswith("vda_lightning."):
        return []
    targets = []
    for alias in node.names:
        if f"{source}.{alias.name}" in known:  # a submodule: `from .. import trust`
            targets.append(f"{source}.{alias.name}")
        elif source == "vda_lightning":  # a name of the face: the module it hands on, or one of its own constants
            if alias.name in exports:
                targets.append(exports[alias.name])
        else:
            targets.append(source)
    return targets


def floor_of(module: str, commands: set[str]) -> str | None:
    """The floor a module stands on; None for the package face (read through the names taken from it)."""
    parts = module.split(".")
    if module in commands or parts[-1] == "__main__":
        return ROOF
    return parts[1] if len(parts) > 1 else None


def upward(imports: list[Import], floors: list[str], commands: set[str]) -> list[str]:
    """One line per import that reaches a floor above the importer's: file, line, floors and the statement."""
    rank = {name: i for i, name in enumerate(floors)}
    lines = []
    for imp in imports:
        here, there = floor_of(module_name(REPO / imp.path), commands), floor_of(imp.target, commands)
        if here is None or there is None or here == there:
            continue
        if there not in rank or here not in rank:
            lines.append(f"{imp.path}:{imp.line}: {here} -> {there}: a floor missing from docs/architecture.md "
                         f"(`{imp.text}`)")
        elif rank[there] > rank[here]:
            lines.append(f"{imp.path}:{imp.line}: `{imp.text}` — {here} (floor {rank[here] + 1}) imports "
                         f"{imp.target} on {there} (floor {rank[there] + 1}), above it")
    return lines


def package_imports() -> list[Import]:
    files = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(f) for f in files}
    exports = face_exports()
    found = []
    for f in files:
        found += imports_of(module_name(f), str(f.relative_to(REPO)), f.read_text(), f.name == "__init__.py", known,
                            exports)
    return found


@pytest.fixture(scope="module")
def floors() -> list[str]:
    return doc_floors(DOC.read_text())


def test_every_package_and_top_level_module_stands_on_one_documented_floor(floors):
    assert floors[-1] == ROOF, f"the commands stand on the roof: the list in {DOC} ends with '{ROOF}'"
    assert len(floors) == len(set(floors)), f"a floor named twice in {DOC}: {floors}"
    commands = command_modules()
    here = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    here |= {p.stem for p in PACKAGE.glob("*.py")
             if p.stem not in ("__init__", "__main__") and f"vda_lightning.{p.stem}" not in commands}
    assert here - set(floors) == set(), f"on no floor of {DOC} ('## Floors'): {sorted(here - set(floors))}"
    assert set(floors) - here - {ROOF} == set(), f"floors of {DOC} that name nothing: {sorted(set(floors) - here)}"


def test_no_module_imports_from_a_floor_above_its_own(floors):
    imports = package_imports()
    commands = command_modules()
    # not vacuous: the reader sees the whole package, hidden imports included, and the command table
    assert len(imports) > 500, len(imports)
    assert sum(i.in_function for i in imports) > 100, "imports inside functions were not read"
    assert any(i.type_checking for i in imports), "imports under TYPE_CHECKING were not read"
    crossing = [i for i in imports if floor_of(module_name(REPO / i.path), commands) != floor_of(i.target, commands)]
    assert len(crossing) > 300, len(crossing)
    assert {"vda_lightning.evaluation.cli", "vda_lightning.inference.cli", "vda_lightning.export"} <= commands
    offenders = upward(imports, floors, commands)
    assert not offenders, "imports that run back up (move the helper down to the floor its users stand on):\n" + \
        "\n".join(offenders)


KNOWN = {"vda_lightning.io", "vda_lightning.io.fake", "vda_lightning.training", "vda_lightning.training.module",
         "vda_lightning.checkpoints", "vda_lightning.inference", "vda_lightning.inference.cli", "vda_lightning.trust"}
FACE = {"load_model": "vda_lightning.checkpoints", "infer_video": "vda_lightning.inference.api"}


@pytest.mark.parametrize("source, line, target", [
    ("import os\n\n\ndef f():\n    from ..training import module\n", 5, "vda_lightning.training.module"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from vda_lightning.training.module import X\n", 3,
     "vda_lightning.training.module"),
    ("def f():\n    from .. import load_model\n", 2, "vda_lightning.checkpoints"),
    ("import vda_lightning.inference.cli as c\n", 1, "vda_lightning.inference.cli"),
])
def test_a_fabricated_upward_import_is_named_with_its_file_and_line(source, line, target):
    """io/ reaching up into training/ (in a function, under TYPE_CHECKING), into checkpoints/ through the
    package face, or into a command: each one is named, with its line and its statement."""
    floors = ["trust", "io", "checkpoints", "inference", "training", ROOF]
    imports = imports_of("vda_lightning.io.fake", "vda_lightning/io/fake.py", source, False, KNOWN, FACE)
    offenders = upward(imports, floors, {"vda_lightning.inference.cli"})
    assert len(offenders) == 1, offenders
    assert offenders[0].startswith(f"vda_lightning/io/fake.py:{line}: `") and target in offenders[0]


def test_downward_imports_and_constants_of_the_face_pass():
    floors = ["trust", "io", "checkpoints", "inference", "training", ROOF]
    source = ("from .. import __version__, trust\nfrom ..trust import display\n\n\ndef f():\n"
              "    from ..io.fake import y\n")
    imports = imports_of("vda_lightning.training.module", "vda_lightning/training/module.py", source, False, KNOWN,
                         FACE)
    assert [i.target for i in imports] == ["vda_lightning.trust", "vda_lightning.trust", "vda_lightning.io.fake"]
    assert upward(imports, floors, set()) == []


def test_the_floor_list_is_read_from_its_section():
    text = "# A\n```\nnot < this\n```\n## Floors\nwords\n```\ntrust/ < io/\n< viz.py < commands\n```\n"
    assert doc_floors(text) == ["trust", "io", "viz", "commands"]
