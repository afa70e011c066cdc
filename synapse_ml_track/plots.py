"""Matplotlib for jobs: the non-interactive backend, imported only when a plot is drawn."""

from __future__ import annotations


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on a Spark driver
    from matplotlib import pyplot as plt

    return plt
