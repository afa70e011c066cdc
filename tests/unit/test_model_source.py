"""Tracing a registered version back to its run's files: only from what the registry documents."""

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from synapse_ml_track.errors import TrackingError
from synapse_ml_track.tracking.registry import model_source
from synapse_ml_track.vocabulary import ARTIFACT_PATH_TAG

RUN = "0f4a9c"
# How AML names a job's output (how-to-manage-models-mlflow.md, support matrix, footnote 2): a source
# that is not a runs:/ URI, so the path inside the run cannot be read from it.
AML_SOURCE = f"azureml://jobs/{RUN}/outputs/artifacts/paths/model-2"


def version(source: str, run_id: str | None = RUN, path: str | None = None) -> ModelVersion:
    tags = [ModelVersionTag(ARTIFACT_PATH_TAG, path)] if path else []
    return ModelVersion("m", "3", 0, source=source, run_id=run_id, tags=tags)


@pytest.mark.parametrize(
    ("registered", "expected"),
    [
        (version(AML_SOURCE, path="model-2"), (RUN, "model-2")),  # the tag written at registration
        (version(f"runs:/{RUN}/model-2"), (RUN, "model-2")),  # registered before the tag, by MLflow's form
        (version(f"runs:/{RUN}/model", path="model-2"), (RUN, "model-2")),  # the tag is ours: it wins
    ],
)
def test_the_run_and_path_come_from_the_run_id_and_the_recorded_path(registered, expected):
    assert model_source(registered) == expected


@pytest.mark.parametrize(
    "registered",
    [
        version(AML_SOURCE),  # no tag, and a source that names no run path: no guess at "model"
        version(AML_SOURCE, run_id=None, path="model-2"),  # a path, but no run to read it in
        version("runs:/another-run/model"),  # a runs:/ source of another run than the version's run_id
    ],
)
def test_a_version_whose_files_cannot_be_found_is_refused_in_one_line(registered):
    with pytest.raises(TrackingError) as refused:
        model_source(registered)
    message = str(refused.value)
    assert "\n" not in message and "model 'm' version 3" in message and ARTIFACT_PATH_TAG in message
    assert refused.value.exit_code == 3
