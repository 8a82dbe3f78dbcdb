"""The architecture rules that import-linter, ruff and mypy do not state: command
help listed without importing the commands, and modules that stay small."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from hermes_cli.cli.app import COMMANDS, command_function

PACKAGE = Path(__file__).resolve().parent.parent / "hermes_cli"


def test_the_lazy_command_table_matches_each_commands_docstring() -> None:
    for name, (_module, _attr, short_help) in COMMANDS.items():
        doc = inspect.getdoc(command_function(name)) or ""
        assert doc.splitlines()[0] == short_help, name


def test_help_and_version_import_no_command_module_and_nothing_heavy() -> None:
    code = (
        "import sys; from hermes_cli.cli.main import run; rc = run(['--help']); "
        "rc2 = run(['--version']); "
        "loaded = sorted(m for m in sys.modules if m.startswith('hermes_cli.cli.') "
        "and m.split('.')[-1] not in ('app', 'main')); "
        "heavy = [m for m in ('llama_cpp', 'huggingface_hub', 'prompt_toolkit', 'rich', 'rich.markdown') "
        "if m in sys.modules]; print('LOADED', loaded, heavy, rc, rc2)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED [] [] 0 0" in proc.stdout, proc.stdout + proc.stderr
    assert "hermes-cli 0." in proc.stdout
    for name in COMMANDS:
        assert f"  {name} " in proc.stdout


def test_no_module_is_over_400_lines() -> None:
    sizes = {p.relative_to(PACKAGE): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}


def test_every_module_says_why_it_exists() -> None:
    missing = [p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
               if p.name != "__main__.py" and not p.read_text().lstrip().startswith('"""')]
    assert missing == []


def test_the_readmes_exit_codes_are_the_error_tables() -> None:
    """One exit-code table (errors.EXIT_CODES): the README lists exactly its codes, and
    every error class exits with one of them."""
    import re

    from hermes_cli import errors

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    paragraph = readme[readme.index("**Exit codes**"):].split("\n\n", 1)[0]
    listed = {int(n) for n in re.findall(r"`(\d+)`", paragraph)}
    assert listed == set(errors.EXIT_CODES)
    for _name, cls in inspect.getmembers(errors, inspect.isclass):
        if issubclass(cls, errors.HermesError):
            assert cls.exit_code in errors.EXIT_CODES, cls


def test_every_error_class_is_in_errors_py() -> None:
    """errors.py says it holds them all: no module defines a subclass of its classes."""
    import re

    from hermes_cli import errors

    names = [n for n, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.HermesError)]
    pattern = re.compile(rf"^class \w+\((?:errors\.)?(?:{'|'.join(names)})\b", re.MULTILINE)
    package = Path(__file__).resolve().parent.parent / "hermes_cli"
    found = [str(p.relative_to(package)) for p in package.rglob("*.py")
             if p.name != "errors.py" and pattern.search(p.read_text())]
    assert found == []


def test_every_commands_help_ends_with_the_one_exit_code_table(hermes_exe) -> None:
    """The codes were copied by hand into four docstrings (and disagreed); now each
    command's --help is given them from errors.EXIT_CODES, and no docstring lists them."""
    import os
    import re
    import subprocess

    from hermes_cli import errors
    from hermes_cli.cli.app import COMMANDS

    for name in ("ask", "chat", "batch"):
        shown = subprocess.run([*hermes_exe, name, "--help"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "400"}).stdout
        epilog = shown[shown.index("Exit codes: "):]
        assert {int(n) for n in re.findall(r"(?:^|; |: )(\d+) ", epilog)} == set(errors.EXIT_CODES), name
    package = Path(errors.__file__).parent
    copies = [p.name for p in package.rglob("*.py") if re.search(r"[Ee]xit (codes|statuses): 0", p.read_text())]
    assert copies == [] and len(COMMANDS) >= 3


def _requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["test"]]


def test_constraints_pin_every_direct_dependency_inside_its_declared_range() -> None:
    """The suite installs from constraints.txt (issue 29: openai 3.60 broke a fresh clone's
    CI overnight). Each direct dependency must be pinned there, to a version that
    pyproject's range allows: the pins are what the product declares, frozen."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (PACKAGE.parent / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    problems = []
    for spec in _requirements():
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate():
            continue  # tomli below 3.11
        version = pins.get(canonicalize_name(req.name))
        if version is None:
            problems.append(f"{req.name}: not pinned")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"{req.name}=={version} is outside {req.specifier}")
    assert problems == []


def test_the_test_command_installs_with_the_constraints() -> None:
    script = (PACKAGE.parent / "scripts" / "test").read_text()
    assert "-c constraints.txt" in script and "HERMES_UNPINNED" in script
