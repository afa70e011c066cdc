"""Metrics from a confusion matrix (rows: true class, columns: predicted), checked by hand."""

import pytest

from synapse_ml_track.spark.evaluation import classification_report_text, from_confusion


@pytest.mark.parametrize(
    ("labels", "confusion", "expected"),
    [
        (["a", "b"], [[5, 0], [0, 5]], {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0, "test_rows": 10}),
        # a: tp 3, predicted 4, support 4 -> p .75 r .75; b: tp 5, predicted 6, support 6 -> p 5/6 r 5/6
        (["a", "b"], [[3, 1], [1, 5]], {"accuracy": 0.8, "precision": 0.8, "recall": 0.8, "f1": 0.8, "test_rows": 10}),
        # a class never predicted: its precision is 0, not a division by zero
        (["a", "b"], [[0, 2], [0, 8]], {"accuracy": 0.8, "precision": 0.64, "recall": 0.8, "test_rows": 10}),
        (["a", "b", "c"], [[0, 0, 0], [0, 0, 0], [0, 0, 0]], {"accuracy": 0.0, "f1": 0.0, "test_rows": 0}),
    ],
)
def test_weighted_metrics(labels, confusion, expected):
    metrics = from_confusion(labels, confusion).metrics
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value), name


def test_per_class_scores_and_support():
    evaluation = from_confusion(["cat", "dog"], [[3, 1], [2, 4]])
    assert evaluation.per_class["cat"] == pytest.approx({"precision": 0.6, "recall": 0.75, "f1": 2 / 3, "support": 4})
    assert evaluation.per_class["dog"] == pytest.approx({"precision": 0.8, "recall": 4 / 6, "f1": 8 / 11, "support": 6})


def test_report_text_lists_every_class_and_the_totals():
    text = classification_report_text(from_confusion(["a", "b"], [[3, 1], [1, 5]]))
    assert [line.split()[0] for line in text.splitlines() if line.strip()] == [
        "class",
        "a",
        "b",
        "accuracy",
        "weighted",
    ]
