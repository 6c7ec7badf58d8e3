"""The paper report: every figure and table of He et al. (2015) that your runs support,
in the paper's order, in one folder. The logic lives in resnet_ablate.analysis; this file
only says what the report holds.

    python analysis/paper.py --runs runs/fig6-table6 runs/fig4-table2 --out reports/paper
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from resnet_ablate.analysis.collect import collect
from resnet_ablate.analysis.report import build

FIGURES = ["fig1", "fig4", "fig6", "fig7", "error_vs_depth", "error_vs_macs",
           "error_vs_params"]
TABLES = ["table1", "table2", "table3", "table6"]
TITLE = "Deep Residual Learning for Image Recognition: figures and tables from our runs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("reports/paper"))
    args = ap.parse_args()
    report = build(collect(args.runs), args.out, figures=FIGURES, tables=TABLES,
                   commands=["python " + " ".join(sys.argv)], title=TITLE)
    print(f"{len(report.figures)} figures, {len(report.tables)} tables, "
          f"{len(report.skipped)} skipped -> {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
