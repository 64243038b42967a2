"""README "Arrays and frames": numpy arrays and pandas frames as expected artifacts."""

import numpy as np
import pandas as pd
import pytest

from pytest_metaflow import assert_artifacts


@pytest.fixture(scope="module")
def features(runner_factory):
    return runner_factory("features_flow.py").run()


def test_frames_and_arrays_compare_with_their_libraries(features):
    expected = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [4.5, 19.0, 27.5]})
    assert_artifacts(features, step="start", table=expected)
    assert_artifacts(features, weights={"temp": np.array([0.5, 0.25, 0.25])})


def test_tolerances(features):
    scaled = np.array([-1.3164, 0.2106, 1.1058])
    assert_artifacts(features, scaled=scaled, atol=1e-3)
    assert_artifacts(features, scaled=pytest.approx(scaled, abs=1e-3))


def test_a_mismatch_says_where(features):
    wrong = pd.DataFrame({"city": ["Oslo", "Lima", "Pune"], "temp": [4.5, 19.0, 28.0]})
    with pytest.raises(AssertionError, match=r"row 2, column 'temp': expected 28.0, got 27.5"):
        assert_artifacts(features, step="start", table=wrong)


def test_any_artifact_name(features):
    # Artifacts called like the helper's own parameters go in a mapping.
    assert_artifacts(features, {"weights": {"temp": np.array([0.5, 0.25, 0.25])}}, step="end")
