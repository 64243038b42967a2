"""Snapshot testing: every artifact of a step compared with a stored, reviewed snapshot.

The snapshots are in __snapshots__/test_snapshot_flow.ambr (the large array in
__snapshot_blobs__/). After an intended change: pytest --snapshot-update.
"""


def test_snapshot_flow(runner, artifact_snapshot):
    result = runner("snapshot_flow.py").run(scale=1.0)
    artifact_snapshot.assert_match(result, step="start")  # every artifact of the step
    artifact_snapshot.assert_match(result, step="square")  # a foreach: every task, in order
    artifact_snapshot.assert_match(result, names=["total"], rtol=1e-9)  # the end step's `total`
