"""Locations as users give them: made absolute once, before they become a Delta identifier or a param."""

import os

import pytest

from synapse_ml_track.config import DataConfig
from synapse_ml_track.errors import DataError
from synapse_ml_track.spark.sources import absolute_location, is_local, local_path, resolve_source


@pytest.mark.parametrize(
    "given, expected",
    [
        ("scores", "{cwd}/scores"),
        ("./out/scores", "{cwd}/out/scores"),
        ("../scores", "{parent}/scores"),
        ("~/scores", "{home}/scores"),
        ("/data/scores", "/data/scores"),
        ("file:///data/scores", "file:///data/scores"),
        ("file:/data/scores", "file:/data/scores"),
        ("abfss://lake@account.dfs.core.windows.net/scores", "abfss://lake@account.dfs.core.windows.net/scores"),
    ],
)
def test_a_location_is_absolute_and_a_uri_is_kept(given, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", "/home/me")
    assert absolute_location(given) == expected.format(cwd=tmp_path, parent=tmp_path.parent, home="/home/me")


def test_local_and_remote_locations():
    assert [is_local(x) for x in ("a", "/a", "file:/a", "file:///a", "abfss://c@a.dfs.core.windows.net/a")] == [
        True,
        True,
        True,
        True,
        False,
    ]
    assert [local_path(x) for x in ("/a", "file:/a", "file:///a")] == ["/a", "/a", "/a"]


def test_an_input_path_is_recorded_absolute_with_its_format(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "events" / "_delta_log").mkdir(parents=True)
    (tmp_path / "plain").mkdir()
    assert (resolve_source(DataConfig(path="new.csv")).path, resolve_source(DataConfig(path="new.csv")).format) == (
        os.path.join(tmp_path, "new.csv"),
        "csv",
    )
    assert resolve_source(DataConfig(path="events")).format == "delta"
    assert resolve_source(DataConfig(path="plain/")).format == "parquet"
    remote = resolve_source(DataConfig(path="abfss://c@a.dfs.core.windows.net/x.parquet"))
    assert (remote.path, remote.format) == ("abfss://c@a.dfs.core.windows.net/x.parquet", "parquet")
    with pytest.raises(DataError, match="cannot tell the format"):
        resolve_source(DataConfig(path="abfss://c@a.dfs.core.windows.net/events"))
