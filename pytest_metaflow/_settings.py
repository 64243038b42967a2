"""Settings and session state of pytest-metaflow: resolved once, in one place.

Every option is resolved by one rule, the closest source winning: a
``@pytest.mark.metaflow(...)`` marker (or a collected flow case, which becomes
one) > the command line > the ini file > the default. A bad value is a usage
error that names where it came from (``--metaflow-timeout: ...``, ``ini option
metaflow_keep: ...``, ``@pytest.mark.metaflow(timeout=...) on test_x: ...``),
as pytest-timeout does.

The session's state (settings, the watchdog, the background remover, the item
running now) and the stash keys live here too; fixtures get them through the
internal ``_metaflow_session`` fixture, hooks through :func:`state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pytest

# Only _launcher (two functions and a help text, no import of its own) at load: the plugin
# imports this module in every pytest process; the rest is imported when used.
from . import _launcher

if TYPE_CHECKING:
    from . import _processes, _store

# The run timeout when none is configured: generous, like Metaflow's file_read_timeout,
# so that a run blocked forever (a step reading stdin, an unreachable endpoint) ends.
DEFAULT_RUN_TIMEOUT = 3600.0


@dataclass
class Settings:
    """Plugin settings resolved from the command line and ini."""

    show_output: bool = False
    pylint: bool = False
    use_config: bool = False
    collect: tuple[str, ...] = ()
    keep: str = "none"
    durations: int = 5
    timeout: float | None = None
    leak_guard: bool = True
    # "local": @kubernetes/@batch steps run locally; "keep": left as they are.
    # None: "local" with the hermetic store, "keep" with --metaflow-use-config.
    remote: str | None = None
    # "fork": tasks start from a per-run zygote (Linux); "exec": fresh interpreters (_launcher).
    launcher: str = "exec"
    # pytest's -v/-q: longer tails and all traceback frames in reports when > 0.
    verbosity: int = 0

    @property
    def remote_mode(self) -> str:
        return self.remote or ("keep" if self.use_config else "local")


@dataclass
class SessionState:
    """What one pytest session (one xdist worker) holds for the plugin."""

    settings: Settings
    current_item: pytest.Item | None = None
    kept_session: Path | None = None
    run_infos: list[dict[str, Any]] = field(default_factory=list)
    # Made on first use (a session that runs no flow imports neither module).
    _watchdog: _processes.Watchdog | None = None
    _remover: _store.Remover | None = None

    @property
    def watchdog(self) -> _processes.Watchdog:
        """The session's watchdog (its process starts when the first thing is registered)."""
        if self._watchdog is None:
            from . import _processes

            self._watchdog = _processes.Watchdog()
        return self._watchdog

    @property
    def remover(self) -> _store.Remover:
        """The session's background remover of stores."""
        if self._remover is None:
            from . import _store

            self._remover = _store.Remover()
        return self._remover

    def close(self) -> None:
        """Stop the watchdog (``pytest_unconfigure``), if the session made one."""
        if self._watchdog is not None:
            self._watchdog.close()

    def wait_removals(self) -> None:
        """Wait for the stores deleted in the background (``pytest_sessionfinish``)."""
        if self._remover is not None:
            self._remover.close()


SESSION_KEY = pytest.StashKey[SessionState]()
RUNS_KEY = pytest.StashKey[list[Any]]()  # on an item: every result its runs returned
STORE_KEY = pytest.StashKey["_store.Store"]()  # on an item: its metaflow_store
FAILED_KEY = pytest.StashKey[bool]()  # on an item: set by the plugin when setup or call failed


def state(config: pytest.Config) -> SessionState:
    """The session state ``pytest_configure`` stored."""
    return config.stash[SESSION_KEY]


# -- the options ------------------------------------------------------------------

SHOW_OUTPUT_HELP = "stream the output of flow runs live instead of keeping it for the failure report"
PYLINT_HELP = "let Metaflow lint flows with pylint before each run (off by default: +1 s per run)"
USE_CONFIG_HELP = (
    "run flows with your Metaflow configuration (METAFLOW_HOME/profile, datastore, "
    "metadata service) instead of a hermetic local store per test"
)
COLLECT_HELP = (
    "collect flow files matching GLOB as tests, one per case of their PYTEST_METAFLOW dict "
    "(a glob with '/' matches the path relative to the rootdir, otherwise the file name; repeatable)"
)
KEEP_HELP = (
    "keep the Metaflow store of failed (or all) tests for a post-mortem, under "
    "<pytest temp root>/metaflow-kept/ (last 3 sessions); default: none"
)
DURATIONS_HELP = "show the N slowest flow runs and steps in the terminal summary (0: all; default 5)"

TIMEOUT_HELP = (
    "kill a flow run (its whole process tree) that runs longer than this many seconds and "
    "fail the test with RunTimeoutError; default 3600, 0: no limit. @pytest.mark.metaflow(timeout=...) wins"
)
REMOTE_HELP = (
    "local: run steps decorated with @kubernetes/@batch locally (their resource arguments "
    "ignored, other decorators kept); keep: leave them as they are (they need your remote setup). "
    "Default: local, or keep with --metaflow-use-config"
)
NO_LEAK_GUARD_HELP = "do not check after each test that its runs left no process and no temporary file"
MARKER_HELP = (
    "metaflow(timeout=None, launcher=None): options of pytest-metaflow for this test; timeout=SECONDS "
    "bounds each flow run of the test (see --metaflow-timeout); launcher='exec' gives its runs' tasks "
    "fresh interpreters (see --metaflow-launcher)"
)


def add_options(parser: pytest.Parser) -> None:
    """Register the plugin's command-line and ini options (``pytest_addoption``)."""
    group = parser.getgroup("metaflow", "testing Metaflow flows (pytest-metaflow)")
    for name, help_text in (
        ("show-output", SHOW_OUTPUT_HELP),
        ("pylint", PYLINT_HELP),
        ("use-config", USE_CONFIG_HELP),
        ("no-leak-guard", NO_LEAK_GUARD_HELP),
    ):
        dest = "metaflow_" + name.replace("-", "_")
        group.addoption(f"--metaflow-{name}", action="store_true", default=None, dest=dest, help=help_text)
        parser.addini(dest, help_text, type="bool", default=False)
    group.addoption("--metaflow-collect", action="append", metavar="GLOB", dest="metaflow_collect", help=COLLECT_HELP)
    parser.addini("metaflow_collect", COLLECT_HELP, type="args", default=[])
    group.addoption("--metaflow-keep", metavar="{none,failed,all}", dest="metaflow_keep", help=KEEP_HELP)
    parser.addini("metaflow_keep", KEEP_HELP, default="none")
    group.addoption("--metaflow-durations", metavar="N", dest="metaflow_durations", help=DURATIONS_HELP)
    _add_number_ini(parser, "metaflow_durations", DURATIONS_HELP, int, default="5")
    group.addoption("--metaflow-timeout", default=None, dest="metaflow_timeout", metavar="SECONDS", help=TIMEOUT_HELP)
    _add_number_ini(parser, "metaflow_timeout", TIMEOUT_HELP, float, default=None)
    group.addoption("--metaflow-remote", metavar="{local,keep}", dest="metaflow_remote", help=REMOTE_HELP)
    parser.addini("metaflow_remote", REMOTE_HELP, default=None)
    group.addoption("--metaflow-launcher", metavar="{fork,exec}", dest="metaflow_launcher", help=_launcher.HELP)
    parser.addini("metaflow_launcher", _launcher.HELP, default=None)


def _add_number_ini(parser: pytest.Parser, name: str, help_text: str, kind: type, default: Any) -> None:
    """An ini option holding a number, written as a number or a string.

    pytest 9 reads ``[tool.pytest]`` in pyproject.toml with native TOML types and
    checks them: a "string" option rejects ``metaflow_timeout = 600``. Register the
    widest type this pytest accepts (``int | str`` on 9.2+, the number type on
    9.0/9.1, a string before); the value is validated by the plugin either way.
    """
    for type_ in (Union[kind, str], kind.__name__):
        try:
            parser.addini(name, help_text, type=type_, default=default)  # type: ignore[arg-type]
            return
        except (AssertionError, ValueError, TypeError):  # this pytest does not know the type
            continue
    parser.addini(name, help_text, default=default)


# -- one value, one rule ---------------------------------------------------------


def parse_timeout(value: Any, source: str) -> float | None:
    """A run timeout in seconds (``None``/0: none); ``ValueError`` naming ``source`` if bad."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not seconds >= 0 or isinstance(value, bool):
        raise ValueError(f"{source}: the run timeout must be a number of seconds >= 0, got {value!r}")
    return seconds or None


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(value: Any, source: str) -> str:
        if value not in choices:
            raise ValueError(f"{source}: expected one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _durations(value: Any, source: str) -> int:
    try:
        number = int(value) if not isinstance(value, (bool, float)) else -1
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise ValueError(f"{source}: expected a number >= 0 (0 shows all), got {value!r}")
    return number


def _flag(config: pytest.Config, name: str) -> bool:
    value = config.getoption(name)
    return bool(config.getini(name) if value is None else value)


def _value(config: pytest.Config, name: str) -> tuple[Any, str]:
    """``(value, where it came from)``: the command line wins over the ini file."""
    value = config.getoption(name)
    if value is not None:
        return value, "--" + name.replace("_", "-")
    return config.getini(name), f"ini option {name}"


def _resolve(config: pytest.Config, name: str, parse: Any, default: Any) -> Any:
    """``parse(value, source)`` of the closest source that sets ``name``; ``default`` when none does."""
    value, source = _value(config, name)
    if value is None or value == "":
        return default() if callable(default) else default
    try:
        return parse(value, source)
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


# Defined here, not in _kept and _store (which read them from here): resolving the settings
# must not import those modules.
KEEP_CHOICES = ("none", "failed", "all")
REMOTE_CHOICES = ("local", "keep")


def from_config(config: pytest.Config) -> Settings:
    """The session's settings from the command line and the ini file (``UsageError`` if bad)."""
    return Settings(
        show_output=_flag(config, "metaflow_show_output"),
        pylint=_flag(config, "metaflow_pylint"),
        use_config=_flag(config, "metaflow_use_config"),
        collect=tuple(config.getoption("metaflow_collect") or config.getini("metaflow_collect")),
        keep=_resolve(config, "metaflow_keep", _choice(KEEP_CHOICES), "none"),
        durations=_resolve(config, "metaflow_durations", _durations, 5),
        timeout=_resolve(config, "metaflow_timeout", parse_timeout, DEFAULT_RUN_TIMEOUT),
        leak_guard=not _flag(config, "metaflow_no_leak_guard"),
        remote=_resolve(config, "metaflow_remote", _choice(REMOTE_CHOICES), None),
        launcher=_resolve(config, "metaflow_launcher", _launcher.validate, _launcher.default),
        verbosity=config.get_verbosity(),
    )


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """Keyword arguments of the ``metaflow`` markers on ``node``, the closest winning."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("metaflow"))):
        if marker.args:
            raise TypeError(f"@pytest.mark.metaflow takes keyword arguments only, got {marker.args!r}")
        options.update(marker.kwargs)
    return options


@dataclass(frozen=True)
class TestSettings:
    """The settings of one test: its markers over the session's."""

    run_timeout: float | None
    launcher: str


def for_test(node: pytest.Item, settings: Settings) -> TestSettings:
    """Resolve ``node``'s ``@pytest.mark.metaflow`` options over the session ``settings``."""
    options = marker_options(node)
    where = f"@pytest.mark.metaflow({{}}=...) on {node.nodeid}"
    timeout = settings.timeout
    if "timeout" in options:
        timeout = parse_timeout(options["timeout"], where.format("timeout"))
    launcher = settings.launcher
    if "launcher" in options:
        launcher = _launcher.validate(options["launcher"], where.format("launcher"))
    return TestSettings(run_timeout=timeout, launcher=launcher)


# -- the verbosity reports are written for -----------------------------------------

_active: list[Settings] = []


def activate(settings: Settings) -> None:
    """Make ``settings`` the ones :func:`verbosity` reads (``pytest_configure``)."""
    _active.append(settings)


def deactivate(settings: Settings) -> None:
    """Undo :func:`activate` (``pytest_unconfigure``; pytester sessions nest)."""
    if settings in _active:
        _active.remove(settings)


def verbosity() -> int:
    """The verbosity of the running session (0 outside one): reports read it when they are written."""
    return _active[-1].verbosity if _active else 0


# -- per-item state ----------------------------------------------------------------


def record(item: pytest.Item | None, result: Any) -> None:
    """Remember ``result`` on ``item`` (for its report and the summary)."""
    if item is not None:
        item.stash.setdefault(RUNS_KEY, []).append(result)


def kept_path(item: pytest.Item, state: SessionState) -> Path | None:
    """Where ``item``'s store is (or will be) kept, ``None`` if it is removed at teardown."""
    keep = state.settings.keep
    if state.kept_session is None or not (keep == "all" or (keep == "failed" and item.stash.get(FAILED_KEY, False))):
        return None
    from . import _kept

    return _kept.target(state.kept_session, item.nodeid)


def dispose_store(item: pytest.Item, store: _store.Store, state: SessionState) -> None:
    """Remove ``item``'s store at its teardown, or tidy it where it is kept."""
    # Runs after the call report: FAILED_KEY tells whether the test failed.
    if kept_path(item, state) is None:
        # Deleted in the background: the disk waits would otherwise add ~0.1 s to each test.
        state.remover.remove(store.path)
    else:
        from . import _kept

        _kept.tidy(store.path)
