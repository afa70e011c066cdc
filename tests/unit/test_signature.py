"""Scoring's check of an input against a model's signature, before anything is read or written."""

import pytest
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from pyspark.sql import types as T

from synapse_ml_track.errors import ConfigError, DataError
from synapse_ml_track.spark.scoring import signature_columns

ALL = ["bill_length_mm", "island", "year"]
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("double", "bill_length_mm"), ColSpec("string", "island"), ColSpec("long", "year")])
)


def schema(**columns: T.DataType) -> T.StructType:
    return T.StructType([T.StructField(name, kind) for name, kind in columns.items()])


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (dict(bill_length_mm=T.DoubleType(), island=T.StringType(), year=T.LongType()), ALL),
        # any numeric column is a double; extra columns are carried, not checked
        (dict(bill_length_mm=T.IntegerType(), island=T.StringType(), year=T.IntegerType(), note=T.StringType()), ALL),
        (dict(bill_length_mm=T.DecimalType(5, 2), island=T.StringType(), year=T.ShortType()), ALL),
    ],
)  # fmt: skip
def test_inputs_the_signature_accepts(columns, expected):
    assert signature_columns(schema(**columns), SIGNATURE, "m/1") == expected


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (dict(island=T.StringType(), year=T.LongType()), "input lacks column(s) bill_length_mm that model m/1 needs"),
        (dict(bill_length_mm=T.StringType(), island=T.StringType(), year=T.LongType()),
         "bill_length_mm is string, the model expects double"),
        (dict(bill_length_mm=T.DoubleType(), island=T.StringType(), year=T.DoubleType()),
         "year is double, the model expects long"),
    ],
)  # fmt: skip
def test_inputs_the_signature_refuses(columns, message):
    with pytest.raises(DataError) as refused:
        signature_columns(schema(**columns), SIGNATURE, "m/1")
    assert message in str(refused.value)


def test_a_model_without_a_signature_cannot_be_checked():
    with pytest.raises(ConfigError, match="has no input signature"):
        signature_columns(schema(a=T.DoubleType()), None, "m/1")
