"""Make the shipped data sets with missing values: `python scripts/make_missing_datasets.py`.

Blanks a fixed, seeded share of the cells of a few columns in two shipped data sets (both from
scikit-learn's bundled data: `load_diabetes` and `load_breast_cancer`, already in `data/`), so the
loop is tested on real rows with holes in them:

- `data/diabetes_missing.csv`: 10% of `bmi`, `bp` and `s5` empty, 5% written `NA`, and 8% of the
  categorical `sex` empty (a category of its own, "missing"). Regression target `progression`.
- `data/breast_cancer_missing.csv`: 10% of `mean_radius`, `mean_texture` and `worst_area` empty
  and 3% written `NaN`. Binary target `target`.

The target and every other column are left whole. Re-running gives the same files.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "data"
PLANS = {
    "diabetes": {"bmi": (0.10, 0.05), "bp": (0.10, 0.05), "s5": (0.10, 0.05), "sex": (0.08, 0.0)},
    "breast_cancer": {"mean_radius": (0.10, 0.03), "mean_texture": (0.10, 0.03), "worst_area": (0.10, 0.03)},
}
MARKER = {"diabetes": "NA", "breast_cancer": "NaN"}


def blank(name: str, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with (DATA / f"{name}.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    for column, (empty, marked) in PLANS[name].items():
        j = header.index(column)
        for row in body:
            draw = rng.random()
            if draw < empty:
                row[j] = ""
            elif draw < empty + marked:
                row[j] = MARKER[name]
    out = DATA / f"{name}_missing.csv"
    with out.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *body])
    return out


def main() -> None:
    for name in PLANS:
        print(f"wrote {blank(name).relative_to(DATA.parent)}")


if __name__ == "__main__":
    main()
