import subprocess
import sys
import time

from metaflow import FlowSpec, Parameter, step

# setproctitle rewrites the memory holding argv and the environment block: neither
# the command line nor /proc/<pid>/environ shows the plugin's token afterwards.
# PR_SET_DUMPABLE 0 makes the environment unreadable to other non-root users.
HELPER = """
import ctypes, sys, time
import setproctitle
setproctitle.setproctitle("innocent-helper " + "x" * 4000)
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
print("titled", flush=True)
time.sleep(120)
"""


class ProcTitleFlow(FlowSpec):
    """A step whose helper renames itself with setproctitle and turns non-dumpable."""

    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        helper = subprocess.Popen([sys.executable, "-c", HELPER, __file__], stdout=subprocess.PIPE)
        print(helper.stdout.readline().decode().strip(), flush=True)
        print("helper started", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProcTitleFlow()
