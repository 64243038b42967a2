"""The distributions: build the wheel and the sdist as a release would, check what is in them.

As pytest-httpserver's packaging test does: the exact file set of both archives,
``twine check --strict`` (PyPI's rendering of the README), the metadata that PyPI
shows, and that the sdist is a source tree whose own tests run.

The build happens on a copy of the source tree in a temp dir, so the checkout
gets no ``build/`` or ``*.egg-info``. Skipped when ``build``/``twine`` are not
installed (they are in the ``test`` extra; ``.ci/run`` installs it).
"""

from __future__ import annotations

import ast
import email
import email.message
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

# Source files a release leaves out: git's own files.
NOT_SHIPPED = re.compile(r"^\.git")
# What a walk of a tree without git skips (a dev's or a build's leftovers).
SKIP_DIRS = {
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "build",
    "dist",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".ipynb_checkpoints",
}
# Files setuptools writes into every sdist.
SDIST_GENERATED = {"PKG-INFO", "setup.cfg"} | {
    f"pytest_metaflow.egg-info/{name}"
    for name in ("PKG-INFO", "SOURCES.txt", "dependency_links.txt", "entry_points.txt", "requires.txt", "top_level.txt")
}
WHEEL_METADATA = {"METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt", "licenses/LICENSE"}
# The sdist must hold what its tests need; checked by name too, in case the tree itself lost them.
SDIST_MUST_HOLD = {
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "pyproject.toml",
    "pytest_metaflow/py.typed",
    "tests/conftest.py",
    "tests/flows/hello.py",
    "sample_flows/data/temperatures.csv",
    "docs/ci.md",
    "docs/examples/github-workflow.yml",
}


def _source_files() -> set[str]:
    """The files of this source tree, relative, as a release would see them."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # A file deleted but not yet staged is still listed by --cached.
        return {f for f in out.split("\0") if f and (ROOT / f).is_file()}
    files = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info") and d[:5] != ".venv"]
        for name in filenames:
            rel = (Path(dirpath) / name).relative_to(ROOT).as_posix()
            if rel in SDIST_GENERATED or name.endswith((".pyc", ".pyo")) or name.startswith(".coverage"):
                continue
            files.add(rel)
    return files


def _version_in_source() -> str:
    """``__version__`` as written in ``pytest_metaflow/__init__.py`` (the one place it lives)."""
    tree = ast.parse((ROOT / "pytest_metaflow" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, str)
            return value
    raise AssertionError("pytest_metaflow/__init__.py has no __version__ = '...' literal")


@pytest.fixture(scope="module")
def source_files() -> set[str]:
    return _source_files()


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory, source_files: set[str]) -> dict[str, Path]:
    """Build sdist and wheel (the wheel from the sdist, as ``python -m build`` does)."""
    pytest.importorskip("build", reason="needs `build` (pip install -e '.[test]')")
    pytest.importorskip("twine", reason="needs `twine` (pip install -e '.[test]')")
    tree = tmp_path_factory.mktemp("src") / "pytest-metaflow"
    for rel in source_files:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"python -m build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


def _sdist_names(sdist: Path) -> tuple[str, set[str]]:
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
    prefix = members[0].name.split("/", 1)[0]
    return prefix, {m.name.split("/", 1)[1] for m in members}


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def test_names_and_version_come_from_one_place(dists: dict[str, Path]) -> None:
    version = _version_in_source()
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", version), version
    assert dists["sdist"].name == f"pytest_metaflow-{version}.tar.gz"
    assert dists["wheel"].name == f"pytest_metaflow-{version}-py3-none-any.whl"
    assert _wheel_metadata(dists["wheel"])["Version"] == version
    # pyproject declares the version dynamic and reads it from __init__.py; it does not repeat it.
    project = re.search(r"(?ms)^\[project\]\n(.*?)^\[", PYPROJECT.read_text())
    assert project and not re.search(r"(?m)^version\s*=", project.group(1))
    assert re.search(r'(?m)^dynamic = \["version"\]', project.group(1))
    assert 'version = { attr = "pytest_metaflow.__version__" }' in PYPROJECT.read_text()


def test_sdist_holds_exactly_the_source_tree(dists: dict[str, Path], source_files: set[str]) -> None:
    prefix, names = _sdist_names(dists["sdist"])
    assert prefix == f"pytest_metaflow-{_version_in_source()}"
    expected = {f for f in source_files if not NOT_SHIPPED.match(f)} | SDIST_GENERATED
    assert names == expected, (
        f"missing from the sdist: {sorted(expected - names)}; unexpected: {sorted(names - expected)}"
    )
    assert SDIST_MUST_HOLD <= names, sorted(SDIST_MUST_HOLD - names)


def test_wheel_holds_exactly_the_package(dists: dict[str, Path], source_files: set[str]) -> None:
    with zipfile.ZipFile(dists["wheel"]) as zf:
        names = set(zf.namelist())
    dist_info = f"pytest_metaflow-{_version_in_source()}.dist-info"
    expected = {f for f in source_files if f.startswith("pytest_metaflow/")} | {
        f"{dist_info}/{name}" for name in WHEEL_METADATA
    }
    assert names == expected, (
        f"missing from the wheel: {sorted(expected - names)}; unexpected: {sorted(names - expected)}"
    )
    assert "pytest_metaflow/py.typed" in names
    with zipfile.ZipFile(dists["wheel"]) as zf:
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        assert zf.read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    assert "[pytest11]\nmetaflow = pytest_metaflow.plugin" in entry_points


def test_twine_check_strict(dists: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists["sdist"]), str(dists["wheel"])],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_metadata_pypi_shows(dists: dict[str, Path]) -> None:
    meta = _wheel_metadata(dists["wheel"])
    assert meta["Name"] == "pytest-metaflow"
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    classifiers = set(meta.get_all("Classifier") or [])
    assert {"Framework :: Pytest", "Typing :: Typed", "Operating System :: POSIX :: Linux"} <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    # The Python classifiers are exactly the versions from requires-python's floor to the newest tested.
    floor = re.fullmatch(r">=3\.(\d+)", meta["Requires-Python"])
    assert floor, meta["Requires-Python"]
    pythons = {c.rsplit(" ", 1)[1] for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert pythons == {f"3.{minor}" for minor in range(int(floor.group(1)), 14)}
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog", "Documentation"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values()), urls


def test_readme_links_work_on_pypi(dists: dict[str, Path]) -> None:
    """PyPI renders the README away from the repository: every link must be absolute, into the Source URL."""
    meta = _wheel_metadata(dists["wheel"])
    description = meta.get_payload()
    assert isinstance(description, str) and description.startswith("# pytest-metaflow")
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    links = re.findall(r"\]\(([^)\s]+)\)", description)
    assert links, "the README has no links at all?"
    relative = [link for link in links if not re.match(r"https?://", link)]
    assert not relative, f"relative links (broken on PyPI): {relative}"
    into_repo = [link for link in links if "/blob/" in link or "/tree/" in link]
    assert into_repo, "expected links into the repository (docs/...)"
    for link in into_repo:
        assert link.startswith(urls["Source"] + "/"), link
        # The link names a file this tree holds (blob/<branch>/<path>).
        path = link.split("/blob/main/", 1)[-1].split("/tree/main/", 1)[-1].split("#", 1)[0]
        assert (ROOT / path).exists(), f"{link} points at {path}, which is not in the tree"


def test_sdist_tests_run(dists: dict[str, Path], tmp_path: Path) -> None:
    """Unpacked, the sdist collects its whole suite and runs a flow test of each kind."""
    with tarfile.open(dists["sdist"]) as tar:
        # tarfile's "data" filter exists from Python 3.12 (and in 3.9-3.11 security updates).
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)
    (tree,) = tmp_path.iterdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT"))}
    env.pop("PYTEST_ADDOPTS", None)
    collect = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:syrupy",
            "--collect-only",
            "-q",
            "tests",
            "sample_flows",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert collect.returncode == 0, collect.stdout[-4000:] + collect.stderr[-2000:]
    assert re.search(r"^\d+ tests collected", collect.stdout, re.M), collect.stdout[-2000:]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            # conftest.py + tests/flows/ (pytester), and a sample flow reading its shipped data file.
            "tests/test_runner.py::test_run_and_helpers_pass",
            "sample_flows/test_include_flow.py",
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", run.stdout) and " failed" not in run.stdout, run.stdout[-2000:]
