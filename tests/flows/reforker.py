import os
import subprocess
import sys
import time

from metaflow import FlowSpec, Parameter, step

# A fork-and-exit chain: every 50 ms the live member forks a child and exits, so at any
# instant the process alive is a new one whose parent is already gone. Bounded whatever
# else fails: at most MAX_FORKS forks in all, and never past the deadline it is given
# (at most LIFETIME seconds after the step started it). A chain that ends by itself
# (not killed by the plugin) leaves a file "<name>.expired" beside this flow, which
# the tests count as a stray file: the plugin's kill, not the bound, must end it.
MAX_FORKS = 800  # 800 x 50 ms = 40 s of forking
LIFETIME = 60.0
CHAIN = """
import os, sys, time
deadline, marker = float(sys.argv[1]), sys.argv[2]
for _ in range(int(sys.argv[3])):
    if time.time() > deadline:
        break
    time.sleep(0.05)
    if os.fork():
        os._exit(0)
with open(marker, "w") as f:
    f.write("the chain ended by itself: nobody killed it")
"""


def start_chain(name, **kwargs):
    deadline = time.time() + LIFETIME
    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".expired")
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.Popen(
        [sys.executable, "-c", CHAIN, str(deadline), marker, str(MAX_FORKS), __file__, name], **quiet, **kwargs
    )


class ReforkerFlow(FlowSpec):
    """A step that starts two bounded fork-and-exit chains: one in the run's group with
    no environment but PATH, one in a session of its own."""

    seconds = Parameter("seconds", default=60, type=int)

    @step
    def start(self):
        start_chain("chain", env={"PATH": os.environ.get("PATH", "")})
        start_chain("session-chain", start_new_session=True)
        print("chains started", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ReforkerFlow()
