"""Export the real datasets bundled with scikit-learn to the CSV files shipped in data/.

Run once by a maintainer; the CSVs are committed so the demo needs no download.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

OUT = Path(__file__).resolve().parents[1] / "data"


def _slug(name: str) -> str:
    return name.replace(" (cm)", "_cm").replace(" ", "_")


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"wrote {path} ({len(rows)} rows, {len(header) - 1} features)")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    bc = load_breast_cancer()
    names = [_slug(n) for n in bc.feature_names]
    # target 1 = benign, 0 = malignant, as in the original Wisconsin data set.
    _write(
        OUT / "breast_cancer.csv",
        [*names, "target"],
        [[*(float(v) for v in x), int(y)] for x, y in zip(bc.data, bc.target, strict=True)],
    )

    iris = load_iris()
    _write(
        OUT / "iris.csv",
        [*(_slug(n) for n in iris.feature_names), "species"],
        [[*(float(v) for v in x), str(iris.target_names[y])] for x, y in zip(iris.data, iris.target, strict=True)],
    )

    # Unscaled diabetes data; "sex" is coded 1/2 in the original study and is kept as a category.
    diab = load_diabetes(scaled=False)
    header = list(diab.feature_names)
    rows = []
    for x, y in zip(diab.data, diab.target, strict=True):
        row: list[object] = [float(v) for v in x]
        row[header.index("sex")] = f"sex_{int(x[header.index('sex')])}"
        rows.append([*row, float(y)])
    _write(OUT / "diabetes.csv", [*header, "progression"], rows)


if __name__ == "__main__":
    main()
