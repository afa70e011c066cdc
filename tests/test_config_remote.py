"""A config file on the cluster's storage (abfss:// on Synapse) is read through Spark."""

from synapse_ml_track.config import build_config


def test_remote_config_is_read_through_spark(spark, tmp_path):
    from synapse_ml_track.api import read_remote_text

    config_file = tmp_path / "remote.yaml"
    config_file.write_text("data:\n  seed: 3\n")
    # Spark reads any Hadoop filesystem URI (abfss:// on Synapse); file: stands in for it here.
    assert read_remote_text(f"file:{config_file}", spark) == "data:\n  seed: 3\n"
    config = build_config(
        config_path="abfss://jobs@lake.dfs.core.windows.net/train.yaml",
        environ={},
        read_remote=lambda path: config_file.read_text(),
    )
    assert config.data.seed == 3
