"""Inputs of step 'start', recorded from TrainFlow/1795975359143637/start/1: the run's parameters.

Edit the values to change what the step's test feeds it.
"""

from pathlib import Path

HERE = Path(__file__).parent

INPUTS = {
    "epochs": 2,
    "lr": 0.5,
}
