"""One teardown contract for everything a fixture or a collected flow starts.

A :class:`RunRegistry` is the ``ExitStack`` of one fixture: each runner,
notebook runner or notebook kernel it made is registered, and :meth:`close`
tears them all down in one order, whatever failed on the way:

1. kill every process of every entry (the whole tree, by token and group),
2. clean up their files (Metaflow's temp files, generated flow files),
3. run the leak guard (nothing the test's runs made may be left),
4. release them from the session watchdog (nothing left for it to reap).

An entry is anything with ``kill()`` and ``cleanup()``; its ``token``,
``flow_file`` and ``cwd`` (when it has them) tell the leak guard where to look,
and its ``tokens`` / ``paths`` (a token it registered with the watchdog, a
directory) are released from the watchdog last. Until then the watchdog
reaps them should pytest die.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from . import _leakguard, _processes


class Supervised(Protocol):
    """What a registry tears down."""

    def kill(self) -> Any: ...

    def cleanup(self) -> None: ...


class RunRegistry:
    """The runners (and kernels) of one fixture, torn down kill → cleanup → leak guard → watchdog release.

    Parameters
    ----------
    guard : LeakGuard, optional
        Checked after kill and cleanup (``None``: ``--metaflow-no-leak-guard``).
    watchdog : Watchdog, optional
        The session's watchdog: the entries' tokens and paths are discarded
        from it at the very end.
    """

    def __init__(self, guard: _leakguard.LeakGuard | None, watchdog: _processes.Watchdog | None) -> None:
        self.guard = guard
        self.watchdog = watchdog
        self.entries: list[Supervised] = []

    def add(self, entry: Supervised) -> Supervised:
        """Register ``entry`` for teardown; return it."""
        self.entries.append(entry)
        return entry

    def close(self) -> None:
        """Kill, clean up, check for leaks, release; every step runs even if an earlier one raised."""
        entries, self.entries = list(self.entries), []
        with contextlib.ExitStack() as stack:
            # ExitStack runs callbacks last-in first-out: push them in reverse order.
            stack.callback(self._release, entries)
            if self.guard is not None:
                stack.callback(self.guard.check, entries)
            for entry in entries:
                stack.callback(entry.cleanup)
            for entry in entries:
                stack.callback(entry.kill)

    def _release(self, entries: Iterable[Supervised]) -> None:
        if self.watchdog is None:
            return
        for entry in entries:
            for token in [getattr(entry, "token", None), *getattr(entry, "tokens", ())]:
                if token:
                    self.watchdog.discard_token(token)
            for path in getattr(entry, "paths", ()):
                self.watchdog.discard_path(str(path))
