"""Search candidates from the config, without a JVM: a pure-Python estimator with two of Spark's
shared params stands in for LogisticRegression (tests/test_search.py checks the real one)."""

import pytest
from pyspark.ml.param.shared import HasMaxIter, HasRegParam

from synapse_ml_track.config import SearchConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.spark.search import candidates


class TwoParams(HasRegParam, HasMaxIter):
    """Params only: set and copy run in Python, as they do for an estimator before it meets the JVM."""


def test_a_grid_is_every_combination_in_a_stable_order():
    grid = SearchConfig(params={"regParam": [0.0, 0.1, 1.0], "maxIter": [10, 20]})
    found = candidates(grid, TwoParams(), seed=1)
    assert [c.params for c in found] == [
        {"maxIter": m, "regParam": r} for m in (10, 20) for r in (0.0, 0.1, 1.0)
    ]  # fmt: skip
    assert [c.index for c in found] == list(range(6))
    assert len({c.key for c in found}) == 6


def test_random_draws_are_seeded_distinct_and_within_their_range():
    ranges = {"regParam": {"low": 0.01, "high": 1.0, "log": True}, "maxIter": {"low": 5, "high": 50, "integer": True}}
    ranged = SearchConfig(params=ranges, method="random", samples=5)
    first = candidates(ranged, TwoParams(), seed=3)
    assert first == candidates(ranged, TwoParams(), seed=3)
    assert first != candidates(ranged, TwoParams(), seed=4)
    assert len({c.key for c in first}) == 5
    assert all(0.01 <= c.params["regParam"] <= 1.0 and isinstance(c.params["maxIter"], int) for c in first)
    assert all(5 <= c.params["maxIter"] <= 50 for c in first)


def test_sampling_a_grid_takes_that_many_distinct_combinations():
    sampled = SearchConfig(params={"regParam": [0.0, 0.1, 1.0], "maxIter": [10, 20]}, method="random", samples=4)
    found = candidates(sampled, TwoParams(), seed=1)
    assert len(found) == 4 and len({c.key for c in found}) == 4


@pytest.mark.parametrize(
    ("search", "message"),
    [
        (SearchConfig(params={"regParam": {"low": 0.0, "high": 1.0}}), "ranges need model.search.method=random"),
        (SearchConfig(params={"regParam": []}), "must list values"),
        (SearchConfig(params={"regParam": {"low": 1.0, "high": 0.1}}, method="random"), "with low <= high"),
        (SearchConfig(params={"regParam": {"low": 0.0, "high": 1, "log": True}}, method="random"), "needs low > 0"),
        (SearchConfig(params={"noSuchParam": [1]}), "is not a parameter of TwoParams"),
        (SearchConfig(params={"maxIter": ["many"]}), "is not valid for TwoParams"),
    ],
)
def test_a_bad_search_is_one_config_error_before_anything_is_fitted(search, message):
    with pytest.raises(ConfigError, match=message):
        candidates(search, TwoParams(), seed=1)
