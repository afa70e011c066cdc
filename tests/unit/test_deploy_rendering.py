"""Deploy's templates rendered and sized, and the pool-sizing rule, without Azure or a build."""

import pytest

from synapse_ml_track.deploy import plan
from synapse_ml_track.deploy.plan import DeployError, DeployRequest, PoolShape


@pytest.mark.parametrize(
    ("template", "values", "rendered"),
    [
        ("${base_uri}/jobs/train.py", {"base_uri": "abfss://f@a.dfs/p"}, "abfss://f@a.dfs/p/jobs/train.py"),
        ({"args": ["--model-uri", "${model_uri}"], "n": 2}, {"model_uri": "models:/m/1"},
         {"args": ["--model-uri", "models:/m/1"], "n": 2}),
        ("@pipeline().RunId", {}, "@pipeline().RunId"),  # Synapse expressions are not placeholders
    ],
)  # fmt: skip
def test_render_fills_placeholders_everywhere(template, values, rendered):
    assert plan.render(template, values) == rendered


def test_render_names_an_unknown_placeholder():
    with pytest.raises(DeployError, match="unknown placeholder"):
        plan.render({"file": "${nowhere}/x.py"}, {})


@pytest.mark.parametrize(
    ("size", "cores", "memory"), [("Small", 4, "28g"), ("Medium", 8, "56g"), ("Large", 16, "112g")]
)
def test_size_job_sets_driver_executors_and_pins_dynamic_allocation(size, cores, memory):
    document = {"properties": {"jobProperties": {"conf": {}}}}
    job = plan.size_job(document, size, 3)["properties"]["jobProperties"]
    assert (job["driverCores"], job["driverMemory"], job["executorCores"], job["executorMemory"]) == (
        cores,
        memory,
        cores,
        memory,
    )
    assert job["numExecutors"] == 3
    assert (
        job["conf"]["spark.dynamicAllocation.minExecutors"]
        == job["conf"]["spark.dynamicAllocation.maxExecutors"]
        == "3"
    )


REQUEST = DeployRequest(workspace="w", storage_account="acct", config="c.yaml")


@pytest.mark.parametrize(
    ("pool", "size", "executors", "refusal"),
    [
        (PoolShape("Small", 4, "p"), "Small", 3, None),
        (PoolShape("Small", 4, "p"), "Small", 4, "does not fit pool mltrack: at most 4 nodes"),
        (
            PoolShape("Small", 10, "p"),
            "Medium",
            2,
            "--executor-size Medium needs 8 cores but pool mltrack has Small nodes",
        ),
        (PoolShape("Large", 10, "p"), "Large", 9, None),
        (PoolShape("Huge", 10, "p"), "Small", 1, "node size 'Huge'"),
    ],
)
def test_sizing_against_the_pool(pool, size, executors, refusal):
    request = DeployRequest(**{**REQUEST.__dict__, "executor_size": size, "num_executors": executors})
    if refusal is None:
        plan.check_sizing(pool, request)
    else:
        with pytest.raises(DeployError, match=refusal):
            plan.check_sizing(pool, request)


@pytest.mark.parametrize("name", ["Ab12", "ab", "a" * 25, "has-dash"])
def test_storage_account_names_are_checked_before_anything_else(name):
    with pytest.raises(DeployError, match="is not a storage account name"):
        plan.make_plan(DeployRequest(**{**REQUEST.__dict__, "storage_account": name}))


@pytest.mark.parametrize(
    ("recurrence", "words"),
    [
        ({"frequency": "Day", "interval": 1, "timeZone": "UTC", "schedule": {"hours": [23], "minutes": [0]}},
         "every 1 Day at 23:00 UTC"),
        ({"frequency": "Day", "interval": 2, "schedule": {"hours": [6, 18], "minutes": [30]}},
         "every 2 Day at 06:30, 18:30 UTC"),
        ({"frequency": "Hour", "interval": 4, "timeZone": "W. Europe Standard Time"},
         "every 4 Hour W. Europe Standard Time"),
    ],
)  # fmt: skip
def test_a_trigger_schedule_in_words(recurrence, words):
    assert plan.describe_schedule({"properties": {"typeProperties": {"recurrence": recurrence}}}) == words
