"""A deterministic penguins-shaped data set of any size, for the benchmark.

Same columns, types and CSV layout as the bundled penguins.csv. Each row's species is drawn
with the bundled class shares; its numeric columns from that species' mean and standard
deviation, its island/sex/year from that species' shares, and fields are left empty (null) at
the bundled missing rates. The same seed and row count always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from synapse_ml_track.spark.sources import bundled_penguins_path

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex", "year"]
COLUMNS = ["species", "island", *NUMERIC, "sex", "year"]
CHUNK = 200_000
VERSION = 1  # bump when the generator changes, so cached files are rebuilt


def _profile(frame: pd.DataFrame) -> dict:
    species = frame["species"].value_counts(normalize=True).sort_index()
    profile = {"species": species.to_dict(), "by_species": {}, "missing": {}}
    for name, group in frame.groupby("species"):
        entry = {"numeric": {c: (float(group[c].mean()), float(group[c].std())) for c in NUMERIC}}
        for column in CATEGORICAL:
            shares = group[column].dropna().value_counts(normalize=True).sort_index()
            entry[column] = {str(k): float(v) for k, v in shares.items()}
        profile["by_species"][name] = entry
    for column in COLUMNS[1:]:
        profile["missing"][column] = float(frame[column].isna().mean())
    return profile


def generate(path: Path, rows: int, seed: int = 20240607) -> Path:
    """Write `rows` rows to `path` (CSV with header) unless an identical file is already there."""
    frame = pd.read_csv(bundled_penguins_path())
    profile = _profile(frame)
    meta = {
        "rows": rows,
        "seed": seed,
        "version": VERSION,
        "profile": hashlib.sha256(json.dumps(profile, sort_keys=True).encode()).hexdigest(),
    }
    meta_path = path.with_suffix(path.suffix + ".meta.json")
    if path.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == meta:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = sorted(profile["species"])
    shares = np.array([profile["species"][n] for n in names])
    tmp = path.with_suffix(".partial")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(",".join(COLUMNS) + "\n")
        done = 0
        while done < rows:
            size = min(CHUNK, rows - done)
            species = rng.choice(len(names), size=size, p=shares)
            chunk = pd.DataFrame({"species": np.array(names, dtype=object)[species]})
            for column in CATEGORICAL:
                values = np.empty(size, dtype=object)
                for index, name in enumerate(names):
                    mask = species == index
                    options = profile["by_species"][name][column]
                    keys = list(options)
                    values[mask] = np.array(keys, dtype=object)[
                        rng.choice(len(keys), size=int(mask.sum()), p=list(options.values()))
                    ]
                chunk[column] = values
            for column in NUMERIC:
                values = np.empty(size)
                for index, name in enumerate(names):
                    mask = species == index
                    mean, std = profile["by_species"][name]["numeric"][column]
                    values[mask] = rng.normal(mean, std, size=int(mask.sum()))
                decimals = 1 if column in ("bill_length_mm", "bill_depth_mm") else 0
                chunk[column] = np.round(values, decimals)
            for column, rate in profile["missing"].items():
                if rate:
                    chunk.loc[rng.random(size) < rate, column] = None
            chunk["body_mass_g"] = chunk["body_mass_g"].map(lambda v: "" if pd.isna(v) else str(int(v)))
            chunk["flipper_length_mm"] = chunk["flipper_length_mm"].map(lambda v: "" if pd.isna(v) else str(int(v)))
            chunk[COLUMNS].to_csv(handle, header=False, index=False, na_rep="")
            done += size
    tmp.replace(path)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write generated penguin rows as CSV (and its .meta.json).")
    parser.add_argument("target", nargs="?", type=Path, default=Path("bench/work/data/penguins_1m.csv"))
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    args = parser.parse_args()
    print(generate(args.target, args.rows))
