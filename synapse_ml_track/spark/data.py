"""Reading, checking and splitting the training data."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import reduce
from importlib import resources
from operator import and_

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from synapse_ml_track.config import DataConfig
from synapse_ml_track.errors import DataError
from synapse_ml_track.spark import delta_tables
from synapse_ml_track.spark.session import first_line_of, one_row, spark_error, spark_error_line, spark_errors
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, InputSource, is_local, local_path
from synapse_ml_track.vocabulary import MODEL_TYPES

# Columns the job adds for itself; an input column may not start with this.
RESERVED_PREFIX = "__smt_"
LABEL = RESERVED_PREFIX + "label"  # the label as text
COMPLETE = RESERVED_PREFIX + "complete"  # no null in the label or a feature
NUMERIC_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType, T.DecimalType)
SPLIT_COLUMN = "_split_bucket"


@dataclass(frozen=True)
class FeatureSpec:
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def pin_version(spark: SparkSession, source: InputSource) -> InputSource:
    """A Delta input or catalog table with the version to read fixed (see delta_tables.pin_version)."""
    return delta_tables.pin_version(spark, source) if source.table or source.format == "delta" else source


def read_input(spark: SparkSession, source: InputSource, data: DataConfig) -> DataFrame:
    """The input; a Delta one at the version pin_version chose (read_input pins it if not done)."""
    if source.frame is not None:
        return source.frame
    if source.bundled:
        return _read_bundled(spark, source)
    if not source.table and is_local(source.path) and not os.path.exists(local_path(source.path)):
        raise DataError(f"input not found: {source.path} (check data.path / --input)")
    if source.table or source.format == "delta":
        return delta_tables.read(spark, source if source.pinned else pin_version(spark, source))
    try:
        if source.format == "csv":
            return _read_csv(spark, source, data)
        return spark.read.parquet(source.path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark raises AnalysisException, SparkException or a bare Py4JJavaError
        raise DataError(
            f"cannot read {source.path} as {source.format}: {spark_error_line(exc)}; check the path and data.format"
        ) from None


def _read_bundled(spark: SparkSession, source: InputSource) -> DataFrame:
    """The bundled data set, read on the driver: the package may be a zip (pyFiles) or live only on
    the driver's disk, where executors cannot read it."""
    import pandas as pd

    resource = resources.files("synapse_ml_track") / "data" / "penguins.csv"
    frame = pd.read_csv(io.BytesIO(resource.read_bytes()), dtype=str, keep_default_na=False)
    rows = [tuple(value if value != "" else None for value in row) for row in frame.itertuples(index=False)]
    text_frame = spark.createDataFrame(rows, T.StructType([T.StructField(c, T.StringType()) for c in frame.columns]))
    schema = T._parse_datatype_string(source.schema or BUNDLED_PENGUINS_SCHEMA)
    assert isinstance(schema, T.StructType)  # a DDL list of columns parses as a struct
    return text_frame.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def _read_csv(spark: SparkSession, source: InputSource, data: DataConfig) -> DataFrame:
    options = {"header": "true", "mode": "FAILFAST", **data.csv_options}
    schema: str | T.StructType
    if source.schema:
        schema, named_as_written = source.schema, True
    else:
        schema, named_as_written = _infer_csv_schema(spark, source.path, data.schema_sample_rows, options)
    if named_as_written and "enforceSchema" not in data.csv_options:
        # Spark then checks each file's header against the columns it reads; otherwise it reads them by
        # position, and a file with two columns the other way round was read swapped. Not where Spark
        # named a column itself (a repeated or empty name in the header: a0, a1, _c2), which no header holds.
        options["enforceSchema"] = "false"
    try:
        return spark.read.options(**options).schema(schema).csv(source.path)
    except Exception as exc:
        if "DDL" in str(exc) or "PARSE_SYNTAX_ERROR" in str(exc):
            raise DataError(f"data.schema is not a valid Spark DDL schema: {spark_error_line(exc)}") from None
        raise


def _infer_csv_schema(
    spark: SparkSession, path: str, sample_rows: int, options: dict[str, str]
) -> tuple[T.StructType, bool]:
    """Infer a CSV schema from the first lines only (a full inferSchema pass reads the data twice), and
    whether its column names are the header's own."""
    lines = [row.value for row in spark.read.text(path).limit(sample_rows + 1).collect()]
    if not lines:
        raise DataError(f"input {path} is empty: it needs a header line and data rows")
    # csv() reads an RDD of lines too; pyspark's annotation names only paths.
    reader = spark.read.options(**{**options, "inferSchema": "true", "mode": "PERMISSIVE"})
    schema = reader.csv(spark.sparkContext.parallelize(lines, 1)).schema  # type: ignore[arg-type]
    if options.get("header", "true").lower() != "true":
        return schema, True
    header_line = spark.sparkContext.parallelize(lines[:1], 1)
    header = one_row(spark.read.options(**{**options, "header": "false"}).csv(header_line))  # type: ignore[arg-type]
    return schema, [field.name for field in schema.fields] == list(header)


def feature_spec(schema: T.StructType, data: DataConfig) -> FeatureSpec:
    """Choose the feature columns: the explicit lists, or every column but the label and exclusions."""
    types = {f.name: f.dataType for f in schema.fields}
    available = ", ".join(types)
    if data.label not in types:
        raise DataError(f"label column '{data.label}' is not in the input (columns: {available}); set data.label")
    named = (data.numeric_features or []) + (data.categorical_features or []) + list(data.exclude)
    missing = [name for name in named if name not in types]
    if missing:
        raise DataError(
            f"column(s) {', '.join(missing)} not in the input (columns: {available}); fix the feature lists"
        )

    if data.numeric_features is None and data.categorical_features is None:
        candidates = [n for n in types if n != data.label and n not in data.exclude]
        numeric = [n for n in candidates if isinstance(types[n], NUMERIC_TYPES)]
        categorical = [n for n in candidates if isinstance(types[n], T.StringType | T.BooleanType)]
    else:
        numeric = list(data.numeric_features or [])
        categorical = list(data.categorical_features or [])
        not_numeric = [n for n in numeric if not isinstance(types[n], NUMERIC_TYPES)]
        if not_numeric:
            raise DataError(
                f"numeric feature(s) {', '.join(not_numeric)} hold non-numeric values "
                f"({', '.join(f'{n}: {types[n].simpleString()}' for n in not_numeric)}); "
                "clean the data or list them under data.categorical_features"
            )
    if not numeric and not categorical:
        raise DataError(f"no feature columns found besides the label (columns: {available}); set data.numeric_features")
    return FeatureSpec(data.label, tuple(numeric), tuple(categorical))


def quoted(name: str) -> str:
    """A column name as Spark SQL reads it whatever it holds: dots, spaces, backticks, any letters."""
    return "`" + name.replace("`", "``") + "`"


def column(name: str) -> Column:
    """The column of exactly this name (F.col would read a dot as a struct field)."""
    return F.col(quoted(name))


def prepare(df: DataFrame, spec: FeatureSpec, task: str = "classification") -> DataFrame:
    """The label under LABEL: as text for classification (classes of any type are classes), as a
    number for regression; numeric features as double, categorical ones as they are, each under its
    own name; and COMPLETE: no null in any of them."""
    reserved = [name for name in df.columns if name.startswith(RESERVED_PREFIX)]
    if reserved:
        raise DataError(
            f"column name(s) {', '.join(reserved)} start with {RESERVED_PREFIX}, which the job reserves; rename them"
        )
    label_type = df.schema[spec.label].dataType
    if task == "regression" and not isinstance(label_type, NUMERIC_TYPES):
        raise DataError(
            f"label '{spec.label}' is {label_type.simpleString()}, but a regression needs a numeric label; "
            "fix data.label or set model.task=classification"
        )
    features = [finite(column(c).cast("double")).alias(c) for c in spec.numeric] + [
        column(c).alias(c) for c in spec.categorical
    ]
    label = finite(column(spec.label).cast("double")) if task == "regression" else column(spec.label).cast("string")
    selected = df.select(label.alias(LABEL), *features)
    complete = reduce(and_, [column(name).isNotNull() for name in selected.columns])
    return selected.withColumn(COMPLETE, complete)


def finite(number: Column) -> Column:
    """A number, or null for NaN and infinity (a CSV's NaN or Inf, pandas' NaN for a missing value): the
    model cannot learn from them, so they count as the nulls data.nulls drops or rejects."""
    return F.when(~F.isnan(number) & (F.abs(number) != float("inf")), number)


def split(df: DataFrame, train_fraction: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Split by a seeded hash of each row's values.

    Unlike randomSplit, the outcome depends only on the rows and the seed, not on partitioning
    or row order, so the same input and seed give the same split on a laptop and on a pool.
    """
    tagged = df.withColumn(SPLIT_COLUMN, hash_bucket(df, seed))
    train = tagged.where(F.col(SPLIT_COLUMN) < train_fraction).drop(SPLIT_COLUMN)
    test = tagged.where(F.col(SPLIT_COLUMN) >= train_fraction).drop(SPLIT_COLUMN)
    return train, test


def hash_bucket(df: DataFrame, seed: int) -> Column:
    """A number in [0, 1) from a seeded hash of the row's values: the same row, the same number,
    however the data is partitioned or ordered."""
    return F.pmod(F.xxhash64(F.lit(seed), *[column(c) for c in df.columns]), F.lit(1_000_000)) / F.lit(1_000_000.0)


@dataclass(frozen=True)
class SplitCounts:
    train: dict[str, int]  # complete rows per class (regression: see count_split)
    test: dict[str, int]
    incomplete: int  # rows with a null label or feature, both splits
    null_label: int  # of which with a null label


def count_split(train: DataFrame, test: DataFrame, task: str = "classification") -> SplitCounts:
    """Rows per class in each split and the rows with nulls, from one aggregation over both splits.

    A regression's label has as many values as rows, so there it is not grouped by: each split's
    rows count under "varied" when its labels differ, else under their one value.
    """
    both = train.withColumn("_in_train", F.lit(True)).unionByName(test.withColumn("_in_train", F.lit(False)))
    if task == "classification":
        counted = both.groupBy("_in_train", COMPLETE, LABEL).count().collect()
        keyed = [(r["_in_train"], r[COMPLETE], r[LABEL], r["count"]) for r in counted]
    else:
        grouped = both.groupBy("_in_train", COMPLETE, F.col(LABEL).isNull().alias("_null_label"))
        rows = grouped.agg(F.count(F.lit(1)).alias("count"), F.min(LABEL).alias("low"), F.max(LABEL).alias("high"))
        keyed = [
            (r["_in_train"], r[COMPLETE], None if r["_null_label"] else _value_key(r["low"], r["high"]), r["count"])
            for r in rows.collect()
        ]
    return SplitCounts(
        train={key: count for in_train, complete, key, count in keyed if complete and in_train},
        test={key: count for in_train, complete, key, count in keyed if complete and not in_train},
        incomplete=sum(count for _, complete, _, count in keyed if not complete),
        null_label=sum(count for _, _, key, count in keyed if key is None),
    )


def _value_key(low: float | None, high: float | None) -> str | None:
    if low is None:
        return None
    return str(low) if low == high else "varied"


def refuse_nulls(frame: DataFrame, spec: FeatureSpec) -> None:
    """Under nulls=reject: one line naming every column with nulls and how many."""
    names = {LABEL: spec.label, **{c: c for c in spec.columns}}
    per_column = one_row(frame.select([F.sum(column(c).isNull().cast("long")).alias(c) for c in names])).asDict()
    listing = ", ".join(f"{names[c]} ({n})" for c, n in per_column.items() if n)
    raise DataError(f"null values in {listing}; clean the data or set data.nulls=drop")


def without_nulls(frame: DataFrame) -> DataFrame:
    return frame.where(F.col(COMPLETE)).drop(COMPLETE)


def many_valued(frame: DataFrame, spec: FeatureSpec, limit: int) -> dict[str, int]:
    """Categorical features with more distinct values than `limit` (approximately counted, one pass):
    each would become that many one-hot columns."""
    if not spec.categorical:
        return {}
    counts = one_row(frame.select([F.approx_count_distinct(column(c)).alias(c) for c in spec.categorical])).asDict()
    return {name: count for name, count in counts.items() if count > limit}


def check_split(
    train_counts: dict[str, int], test_counts: dict[str, int], spec: FeatureSpec, task: str, model_type: str
) -> list[str]:
    """Refuse splits nothing can be learnt or tested from; the classes, for classification."""
    if not train_counts and not test_counts:
        raise DataError(
            "no rows left to train on (empty input, or every row had a null); check the input and data.nulls"
        )
    if not train_counts or not test_counts:
        empty = "training" if not train_counts else "test"
        raise DataError(f"the {empty} split is empty; add rows or change data.train_fraction")
    if task == "regression":
        if "varied" not in train_counts:
            value = next(iter(train_counts))
            raise DataError(
                f"label '{spec.label}' has a single value ({value}) in the training split; "
                "a regression needs a label that varies"
            )
        return []
    classes = sorted(set(train_counts) | set(test_counts), key=str)
    if len(classes) < 2:
        raise DataError(
            f"label '{spec.label}' has a single class ({classes[0]!r}); a classifier needs at least two classes"
        )
    only_in_test = sorted(set(test_counts) - set(train_counts))
    if only_in_test:
        raise DataError(
            f"class(es) {', '.join(map(repr, only_in_test))} of '{spec.label}' appear only in the test split; "
            "add rows of those classes or change data.seed / data.train_fraction"
        )
    kinds = MODEL_TYPES[task]
    if kinds[model_type].binary_only and len(classes) > 2:
        others = [name for name, kind in kinds.items() if not kind.binary_only]
        raise DataError(
            f"model.type {model_type} supports binary labels only, but '{spec.label}' has {len(classes)} classes; "
            f"use {' or '.join(others)}"
        )
    return classes


CSV_HEADER_MISMATCH = "CSV header does not conform to the schema"  # Spark's CSVHeaderChecker


@contextmanager
def malformed_input_errors(source: InputSource) -> Iterator[None]:
    """Turn Spark's FAILFAST parse failure, and a CSV file whose header names other columns than the input
    is read with (both raised at the first action), into a DataError."""
    try:
        yield
    except Exception as exc:
        malformed = spark_error(exc, "MALFORMED_RECORD_IN_PARSING")
        if malformed is None:
            header = next((m for _, m in spark_errors(exc) if m.startswith(CSV_HEADER_MISMATCH)), None)
            if header is None:
                raise
            found = dict(line.strip().split(": ", 1) for line in header.splitlines()[1:] if ": " in line)
            raise DataError(
                f"the header of {found.get('CSV file', source.path)} ({found.get('Header', '?')}) does not match the "
                f"columns {source.path} is read with ({found.get('Schema', '?')}): give every file the same columns "
                "in the same order, or fix data.schema"
            ) from None
        detail = first_line_of(malformed)
        raise DataError(
            f"a row of {source.path or 'the input DataFrame'} does not match the schema "
            f"(a non-numeric value in a numeric column?): {detail[:200]}; fix the data or data.schema"
        ) from None
