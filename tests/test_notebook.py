"""The example notebook, executed cell by cell in a real Jupyter kernel (nbclient, ipykernel), as a
Synapse notebook or a pipeline's notebook activity runs it: `spark` is the kernel's own session,
started by a cell put before the notebook's (Synapse starts it before the first cell), and the
pipeline's parameters come in a cell after the tagged parameters cell (Synapse inserts that cell
the same way). A real MLflow server tracks the runs."""

from __future__ import annotations

import copy
import json
import uuid

import nbformat
import pytest
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from support import REPO

pytestmark = pytest.mark.minutes(1)

NOTEBOOK = REPO / "notebooks" / "train_and_score.ipynb"
SESSION = """
from pyspark.sql import SparkSession
from synapse_ml_track.spark import delta
builder = (SparkSession.builder.master("local[1]").config("spark.sql.shuffle.partitions", "1")
           .config("spark.ui.enabled", "false").config("spark.sql.warehouse.dir", "warehouse"))
for key, value in delta.local_session_conf().items():
    builder = builder.config(key, value)
spark = builder.getOrCreate()
"""
# After the notebook's own cells: what the acceptance asks of predict and of a pandas frame, read back
# as one JSON line.
CHECKS = """
import json
from synapse_ml_track.errors import ConfigError
frame = penguins.dropna().toPandas()
try:
    from_pandas = smt.train(
        data=frame, spark=spark, tracking_uri=tracking_uri, experiment_name=experiment_name + "-pandas",
        overrides={"tracking.register": False},
    ).status
except ConfigError as exc:
    from_pandas = f"ConfigError: {exc}"
print(json.dumps({
    "input_rows": penguins.count(),
    "predicted_rows": predicted.count(),
    "predicted_columns": predicted.columns,
    "scored_columns": scored.scores().columns,
    "scored": [scored.rows_scored, scored.rows_unscorable],
    "trained": [trained.status, trained.model_version],
    "pandas": from_pandas,
}))
"""


def code_cell(source: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source.strip())


def test_the_notebook_runs_in_a_kernel_with_only_the_public_api(mlflow_server, tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "outputs left in the repo"
    imports = [line for cell in code for line in cell.source.splitlines() if line.startswith(("import ", "from "))]
    assert imports == ["import synapse_ml_track as smt"], imports  # the public API only

    suffix = uuid.uuid4().hex[:8]
    parameters = {
        "tracking_uri": mlflow_server.uri,
        "experiment_name": f"kernel-{suffix}",
        "registered_model_name": f"kernel-{suffix}",
        "scores_path": str(tmp_path / "scores"),
    }
    run = copy.deepcopy(notebook)
    tagged = [i for i, cell in enumerate(run.cells) if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    given = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    run.cells.insert(tagged[0] + 1, code_cell(given))
    run.cells.insert(0, code_cell(SESSION))
    run.cells.append(code_cell(CHECKS))

    NotebookClient(run, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    errors = [output for cell in run.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert errors == []
    printed = "".join(output.get("text", "") for output in run.cells[-1].outputs if output.output_type == "stream")
    checks = json.loads(printed.strip().splitlines()[-1])
    assert checks["trained"] == ["registered", "1"]
    assert checks["predicted_rows"] == checks["input_rows"] == sum(checks["scored"]) == 344
    assert checks["predicted_columns"] == checks["scored_columns"]
    expected = {"prediction", "unscorable_reason", "model_version", "probability_Adelie"}
    assert expected <= set(checks["predicted_columns"])
    assert checks["pandas"] == "tracked"
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([client.get_experiment_by_name(f"kernel-{suffix}").experiment_id])
    assert sorted(run.data.tags["smt.job"] for run in runs) == ["score", "train"]
    assert all(run.info.status == "FINISHED" for run in runs)
