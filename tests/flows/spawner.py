import subprocess
import sys
import time

from metaflow import FlowSpec, Parameter, step


class SpawnerFlow(FlowSpec):
    """A step that starts a helper in its own session (as a step's local server
    would): Metaflow's ``pkill -P`` never reaches it."""

    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)", __file__, "helper"],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        print("helper started", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SpawnerFlow()
