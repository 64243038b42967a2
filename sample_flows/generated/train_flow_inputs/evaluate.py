"""Inputs of step 'evaluate', recorded from TrainFlow/1795975359143637/evaluate/3: the artifacts of its parent task.

Edit the values to change what the step's test feeds it.
"""

from pathlib import Path

HERE = Path(__file__).parent

INPUTS = {
    "w": 0.6524999999999999,
    "b": 0.7750000000000021,
    "data": [(0, 1.0), (1, 3.0), (2, 5.0), (3, 7.0), (4, 9.0), (5, 11.0), (6, 13.0), (7, 15.0), (8, 17.0), (9, 19.0)],
    "epochs": 2,
    "lr": 0.5,
}
