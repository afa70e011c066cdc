"""Two jobs promoting at the same moment settle on the better version, whatever order their requests
land in (registry.promote), against an in-process MLflow store (an sqlite file, no server)."""

from __future__ import annotations

import uuid

import pytest
from mlflow.tracking import MlflowClient

from synapse_ml_track.tracking import registry
from synapse_ml_track.tracking.registry import RegisteredVersion, Standing
from synapse_ml_track.vocabulary import CHAMPION_TAG

from support import memory_dir, new_sqlite_store

pytestmark = pytest.mark.embedded_store
ALIAS = "champion"


@pytest.fixture(scope="module")
def client() -> MlflowClient:
    return MlflowClient(tracking_uri=new_sqlite_store(memory_dir("unit-store-")))


def versions(client: MlflowClient, count: int) -> list[RegisteredVersion]:
    name = f"race-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    return [
        RegisteredVersion(name, str(client.create_model_version(name, f"/tmp/{name}/{i}").version))
        for i in range(count)
    ]


def marked(client: MlflowClient, name: str) -> list[str]:
    return sorted(registry._candidates(client, name, ALIAS))


def test_a_worse_version_promoted_second_does_not_take_the_alias(client):
    better, worse = versions(client, 2)
    assert registry.promote(client, better, ALIAS, Standing("f1", 0.98))
    assert not registry.promote(client, worse, ALIAS, Standing("f1", 0.90))
    assert registry.champion_version(client, better.name, ALIAS) == better.version
    assert marked(client, better.name) == [better.version]


def test_a_better_version_promoted_second_takes_it_from_the_worse(client):
    worse, better = versions(client, 2)
    assert registry.promote(client, worse, ALIAS, Standing("rmse", 9.0))
    assert registry.promote(client, better, ALIAS, Standing("rmse", 7.5))  # lower rmse wins
    assert registry.champion_version(client, worse.name, ALIAS) == better.version
    assert marked(client, worse.name) == [better.version]


def test_a_late_alias_write_of_the_loser_is_put_back_on_the_winner(client):
    """The worse job read the candidates before the better one marked its version, so it went ahead;
    its alias write landed after the winner's. Its check after the write restores the winner."""
    worse, better = versions(client, 2)
    assert registry.promote(client, worse, ALIAS, Standing("f1", 0.90))
    assert registry.promote(client, better, ALIAS, Standing("f1", 0.98))
    client.set_registered_model_alias(worse.name, ALIAS, worse.version)  # the loser's write, landing late
    assert not registry._settle_alias(client, worse, ALIAS)
    assert registry.champion_version(client, worse.name, ALIAS) == better.version


def test_the_champion_the_gate_beat_is_replaced_even_with_a_better_recorded_standing(client):
    """Standings on different test data are not comparable: the gate's comparison on this split decides."""
    old, new = versions(client, 2)
    assert registry.promote(client, old, ALIAS, Standing("f1", 0.99))
    assert registry.promote(client, new, ALIAS, Standing("f1", 0.95, beaten=old.version))
    assert registry.champion_version(client, old.name, ALIAS) == new.version
    assert client.get_model_version(old.name, old.version).tags.get(CHAMPION_TAG) is None


def test_on_a_tie_the_older_version_keeps_it(client):
    first, second = versions(client, 2)
    assert registry.promote(client, first, ALIAS, Standing("f1", 0.95))
    assert not registry.promote(client, second, ALIAS, Standing("f1", 0.95))
    assert registry.champion_version(client, first.name, ALIAS) == first.version


def test_without_the_champion_comparison_the_new_version_is_promoted_whatever_its_standing(client):
    champion, new = versions(client, 2)
    assert registry.promote(client, champion, ALIAS, Standing("f1", 0.99))
    assert registry.promote(client, new, ALIAS, Standing("f1", 0.5, contested=False))
    assert registry.champion_version(client, champion.name, ALIAS) == new.version
    assert marked(client, champion.name) == [new.version]
