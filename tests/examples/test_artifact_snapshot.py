from pytest_metaflow import ArtifactSnapshot


def test_snapshot_flow(runner, artifact_snapshot: ArtifactSnapshot):
    result = runner("sample_flows/snapshot_flow.py").run(scale=1.0)
    artifact_snapshot.assert_match(result, step="start")  # every artifact of the step
    artifact_snapshot.assert_match(result, step="square")  # a foreach: every task, in order
    artifact_snapshot.assert_match(result, names=["total"], rtol=1e-9)  # the end step's `total`
