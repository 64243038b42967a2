import os
import subprocess
import sys
import time

from metaflow import FlowSpec, Parameter, step

SLEEP = "import time; time.sleep(120)"


class EnvDropperFlow(FlowSpec):
    """A step whose helpers drop the environment (and with it the plugin's token)."""

    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a replaced environment, as a step calling a tool with env={"PATH": ...} does
        subprocess.Popen(
            [sys.executable, "-c", SLEEP, __file__, "dropped"], env={"PATH": os.environ.get("PATH", "")}, **quiet
        )
        # no environment at all, in a session of its own
        subprocess.Popen([sys.executable, "-c", SLEEP, __file__, "detached"], env={}, start_new_session=True, **quiet)
        print("helpers started", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    EnvDropperFlow()
