"""Data preparation: schema, feature selection, null handling, deterministic split (chispa equality)."""

import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from synapse_ml_track.config import DataConfig
from synapse_ml_track.errors import DataError
from synapse_ml_track.spark.data import (
    COMPLETE,
    LABEL,
    count_split,
    feature_spec,
    prepare,
    read_input,
    refuse_nulls,
    split,
    without_nulls,
)
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, resolve_source

SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType()),
        T.StructField("size", T.IntegerType()),
        T.StructField("colour", T.StringType()),
    ]
)


def test_bundled_default_reads_with_its_schema(spark):
    source = resolve_source(DataConfig())
    assert source.bundled and source.format == "csv" and source.schema == BUNDLED_PENGUINS_SCHEMA
    frame = read_input(spark, source, DataConfig())
    assert frame.count() == 344
    assert dict(frame.dtypes)["bill_length_mm"] == "double"


def test_csv_schema_is_inferred_from_a_sample(spark, tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("kind,size,colour\na,1,red\nb,2,blue\n")
    config = DataConfig(path=str(path), label="kind")
    frame = read_input(spark, resolve_source(config), config)
    assert frame.schema == SCHEMA


def test_features_are_inferred_from_types_and_listed_ones_checked(spark):
    spec = feature_spec(SCHEMA, DataConfig(label="kind"))
    assert (spec.numeric, spec.categorical) == (("size",), ("colour",))
    with pytest.raises(DataError, match="numeric feature\\(s\\) colour hold non-numeric values"):
        feature_spec(SCHEMA, DataConfig(label="kind", numeric_features=["colour"]))


def test_prepare_flags_nulls_casts_numbers_and_keeps_the_label_as_text(spark):
    frame = spark.createDataFrame([("a", 1, "red"), ("b", None, "blue"), (None, 3, "red")], SCHEMA)
    spec = feature_spec(SCHEMA, DataConfig(label="kind"))
    expected = spark.createDataFrame(
        [("a", 1.0, "red", True), ("b", None, "blue", False), (None, 3.0, "red", False)],
        f"{LABEL} string, size double, colour string, {COMPLETE} boolean",
    )
    prepared = prepare(frame, spec)
    assert_df_equality(prepared, expected, ignore_nullable=True)
    assert_df_equality(without_nulls(prepared), expected.where(COMPLETE).drop(COMPLETE), ignore_nullable=True)
    with pytest.raises(DataError, match=r"null values in kind \(1\), size \(1\)"):
        refuse_nulls(prepared, spec)


def test_labels_of_any_type_are_classes(spark):
    frame = spark.createDataFrame([(1, True, 2.0), (0, False, 3.0)], "level int, flag boolean, size double")
    for label in ("level", "flag"):
        spec = feature_spec(frame.schema, DataConfig(label=label, numeric_features=["size"]))
        assert sorted(r[LABEL] for r in prepare(frame, spec).collect()) == (
            ["0", "1"] if label == "level" else ["false", "true"]
        )


def test_a_reserved_column_name_is_refused_by_name(spark):
    frame = spark.createDataFrame([("a", 1.0)], "kind string, __smt_size double")
    with pytest.raises(DataError, match="column name\\(s\\) __smt_size start with __smt_"):
        prepare(frame, feature_spec(frame.schema, DataConfig(label="kind")))


def test_split_depends_on_rows_and_seed_not_on_partitioning(spark):
    frame = spark.range(2000).selectExpr("cast(id as string) as kind", "cast(id % 7 as int) as size", "'x' as colour")
    train_a, test_a = split(frame, 0.75, seed=3)
    train_b, test_b = split(frame.repartition(5).orderBy("size"), 0.75, seed=3)
    assert_df_equality(train_a, train_b, ignore_row_order=True)
    assert_df_equality(test_a, test_b, ignore_row_order=True)
    assert 1300 < train_a.count() < 1700
    assert split(frame, 0.75, seed=4)[1].exceptAll(test_a).count() > 0


def test_class_and_null_counts_per_split_from_one_aggregation(spark):
    frame = spark.createDataFrame([("a", 1, "r")] * 3 + [("b", 2, "r"), (None, 2, "r"), ("b", None, "r")], SCHEMA)
    prepared = prepare(frame, feature_spec(SCHEMA, DataConfig(label="kind")))
    train, test = prepared.limit(3), prepared.exceptAll(prepared.limit(3))
    counts = count_split(train, test)
    assert (counts.train, counts.test) == ({"a": 3}, {"b": 1})
    assert (counts.incomplete, counts.null_label) == (2, 1)


def test_a_header_spark_renames_is_read_by_position_with_sparks_names(spark, tmp_path):
    """Each file's header is checked against the columns read (a file with two columns the other way round
    is refused: tests/test_bad_input.py), except where Spark names a column itself, which no header holds."""
    path = tmp_path / "repeated.csv"
    path.write_text("a,a,,b\n1,2,3,4\n")
    config = DataConfig(path=str(path))
    frame = read_input(spark, resolve_source(config), config)
    assert [tuple(row) for row in frame.collect()] == [(1, 2, 3, 4)]
    assert frame.columns == ["a0", "a1", "_c2", "b"]
