"""A data set whose answer is known: y = 3·x1 − 2·x2 + EFFECT[group] + noise of standard deviation NOISE."""

from __future__ import annotations

import random

import pandas as pd

NOISE = 0.2
EFFECT = {"a": 0.0, "b": 1.5, "c": -1.0}


def linear_rows(count: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        x1, x2, group = rng.uniform(0, 2), rng.uniform(0, 2), rng.choice("abc")
        rows.append({"x1": x1, "x2": x2, "group": group, "y": 3 * x1 - 2 * x2 + EFFECT[group] + rng.gauss(0, NOISE)})
    return pd.DataFrame(rows)
