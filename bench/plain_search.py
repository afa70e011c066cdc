"""The baseline `bench/search.py` measures the job's search against: the same search written by hand
with Spark's own CrossValidator, and no MLflow at all.

    python bench/plain_search.py GRID_JSON FOLDS PARALLELISM [INPUT_CSV]

The job's own Spark work up to the fit, through the library's functions (read, feature columns,
prepare and cache, hash split, rows with nulls left out, label indexer, the same pipeline and
estimator from the same default configuration), then CrossValidator over the same parameter maps on
the same estimator stage, scored by f1 like the job's default search metric, and the best model's f1
on the test split. Prints one JSON line: the best parameters, validation and test f1.
"""

import json
import sys

from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

from synapse_ml_track.config import build_config
from synapse_ml_track.spark import data, pipeline, sources
from synapse_ml_track.spark.session import get_or_create_spark


def main(grid_json: str, folds: str, parallelism: str, input_path: str | None = None) -> None:
    grid = json.loads(grid_json)
    config = build_config(overrides={"data": {"path": input_path}} if input_path else {}, environ={})
    spark = get_or_create_spark("plain-search")  # the session the job would get: same local settings
    source = sources.resolve_source(config.data)
    raw = data.read_input(spark, source, config.data)
    spec = data.feature_spec(raw.schema, config.data)
    prepared = data.prepare(raw, spec, config.model.task).cache()
    train, test = data.split(prepared, config.data.train_fraction, config.data.seed)
    train, test = data.without_nulls(train), data.without_nulls(test)
    indexer = pipeline.fit_label_indexer(train)
    train, test = indexer.transform(train), indexer.transform(test)
    estimator = pipeline.build_estimator(config.model.task, config.model.type, config.model.params, config.data.seed)
    fitted_pipeline = pipeline.build_pipeline(spec, estimator, list(indexer.labels))
    builder = ParamGridBuilder()
    for name in sorted(grid):  # the job's candidate order: the product over sorted names
        builder.addGrid(estimator.getParam(name), grid[name])
    evaluator = MulticlassClassificationEvaluator(
        metricName="f1", labelCol=pipeline.LABEL_INDEX, predictionCol=pipeline.PREDICTION_INDEX
    )
    search = CrossValidator(
        estimator=fitted_pipeline,
        estimatorParamMaps=builder.build(),
        evaluator=evaluator,
        numFolds=int(folds),
        parallelism=int(parallelism),
        seed=config.data.seed,
    )
    model = search.fit(train)
    best = max(range(len(model.avgMetrics)), key=lambda i: (model.avgMetrics[i], -i))
    test_f1 = evaluator.evaluate(model.bestModel.transform(test))
    params = {param.name: value for param, value in model.getEstimatorParamMaps()[best].items()}
    print(json.dumps({"best": best, "params": params, "validation_f1": model.avgMetrics[best], "test_f1": test_f1}))
    prepared.unpersist()
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:5])
