"""Records how each task was started and what it sees (tests/test_launcher.py).

``how`` is "fork" when the task's parent has the same command line as its grandparent
(a zygote forked from the runtime), "exec" when its parent is the runtime itself.
"""

import os
import sys

from metaflow import FlowSpec, catch, current, environment, retry, step


def _how():
    try:
        parent = os.getppid()
        with open(f"/proc/{parent}/stat") as f:
            grandparent = int(f.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{parent}/cmdline", "rb") as f, open(f"/proc/{grandparent}/cmdline", "rb") as g:
            return "fork" if f.read() == g.read() else "exec"
    except OSError:
        return "unknown"


def _served():
    """Whether an ancestor of this task is the plugin's runtime server (the runtime was forked)."""
    pid = os.getppid()
    for _ in range(4):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"pytest_metaflow_server" in f.read():
                    return True
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            return False
    return False


class LauncherProbeFlow(FlowSpec):
    @step
    def start(self):
        self.how = _how()
        print("to stdout from start")
        print("to stderr from start", file=sys.stderr)
        self.items = [1, 2, 3]
        self.next(self.each, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def each(self):
        self.how = _how()
        if current.retry_count == 0 and self.input == 2:
            raise RuntimeError("first attempt fails")
        self.value = self.input * 10
        print("each", self.input, "attempt", current.retry_count)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.how = _how()
        self.values = sorted(i.value for i in inputs)
        self.hows = sorted(i.how for i in inputs)
        self.next(self.environ)

    @environment(vars={"PROBE_VAR": "set by @environment"})
    @step
    def environ(self):
        self.how = _how()
        self.probe = os.environ.get("PROBE_VAR")
        self.next(self.caught)

    @catch(var="error")
    @step
    def caught(self):
        self.how = _how()
        raise ValueError("caught by @catch")
        self.next(self.end)

    @step
    def end(self):
        self.how = _how()
        self.served = _served()
        self.seen = {
            "argv0": os.path.basename(sys.argv[0]),
            "executable": sys.executable,
            "foreach_frame_in_main": hasattr(sys.modules["__main__"], "ForeachFrame"),
            "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
            "zygote_address_visible": "PYTEST_METAFLOW_ZYGOTE" in os.environ,
            "stdin_is_devnull": os.path.samefile("/proc/self/fd/0", os.devnull),
            "stdout_line_buffered": sys.stdout.line_buffering,
            "stdout_write_through": sys.stdout.write_through,
            "stderr_line_buffered": sys.stderr.line_buffering,
            "main_name": sys.modules["__main__"].__name__,
            "error_type": type(self.error).__name__ if hasattr(self, "error") else None,
        }
        print("end sees", self.seen)


if __name__ == "__main__":
    LauncherProbeFlow()
