import os
import subprocess
import sys
import time

from metaflow import FlowSpec, Parameter, step

# Forks a child and exits, every 10 milliseconds, forever: at any instant the
# process alive is a new one, whose parent is already gone.
CHAIN = """
import os, time
while True:
    time.sleep(0.01)
    if os.fork():
        os._exit(0)
"""


class ReforkerFlow(FlowSpec):
    """A step that starts fork-and-exit chains: one in the run's group with no
    environment, one in a session of its own."""

    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.Popen([sys.executable, "-c", CHAIN, __file__, "chain"], env={"PATH": os.environ.get("PATH", "")}, **quiet)
        subprocess.Popen([sys.executable, "-c", CHAIN, __file__, "session-chain"], start_new_session=True, **quiet)
        print("chains started", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReforkerFlow()
