"""The Table-1 report on real pairs: structure, the paper's numbers beside ours, winners."""

from __future__ import annotations

import csv

import pytest

from funfusean_tf.cli import main
from funfusean_tf.comparison import PAPER_TABLE1

pytestmark = pytest.mark.slow


def test_table1_report_on_the_funfusean_pairs(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("FUNFUSEAN_DATA", str(shared_data))
    out = tmp_path / "t1"
    assert main(["table1", "--out", str(out), "--pairs", "funfusean_test", "--methods", "average", "maximum",
                 "--quiet"]) == 0
    with (out / "table1.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["average", "maximum"]
    for row in rows:
        assert int(row["n"]) == 10 and float(row["seconds_per_100"]) > 0
        for metric in ("Q_NCIE", "Q_G", "Q_FMI", "Q_S", "Q_VIFF"):
            assert 0.0 <= float(row[metric]) <= 1.0 + 1e-9
    text = (out / "table1.md").read_text()
    best_qs = max(rows, key=lambda r: float(r["Q_S"]))["method"]
    assert f"Q_S: **{best_qs}**" in text
    assert all(f"{v:g}" in text for v in PAPER_TABLE1["Q_G"])  # the paper's row is printed beside ours
    assert len(list((out / "fused" / "funfusean_test" / "average").glob("*.png"))) == 10
