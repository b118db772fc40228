#!/usr/bin/env python3
"""Plots scripts/load.sh results as an SVG bar chart: requests/s per scenario, one bar per run.

    scripts/plot_load.py OUT.svg RUN.tsv [RUN.tsv ...]

Each TSV is one run of scripts/load.sh (`OUT=... scripts/load.sh`); its file name (without
`.tsv`) labels its bars, so `before.tsv after.tsv` draws before/after side by side. No
dependencies beyond the standard library.
"""

import csv
import html
import os
import sys

COLOURS = ["#9e9e9e", "#1f77b4", "#2ca02c", "#d62728"]


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {r["scenario"]: float(r["requests_per_second"] or 0) for r in rows}


def main(out, paths):
    runs = [(os.path.basename(p).removesuffix(".tsv"), read(p)) for p in paths]
    scenarios = []
    for _, run in runs:
        scenarios += [s for s in run if s not in scenarios]
    top = max((v for _, run in runs for v in run.values()), default=1) or 1
    bar, gap, left, width = 14, 12, 170, 520
    group = bar * len(runs) + gap
    height = 60 + group * len(scenarios) + 20 * len(runs)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{height}"'
        ' font-family="sans-serif" font-size="12">',
        '<text x="10" y="20" font-size="14" font-weight="bold">'
        "requests/s per scenario (scripts/load.sh, wrk -t2 -c32)</text>",
    ]
    y = 40
    for scenario in scenarios:
        svg.append(
            f'<text x="{left - 8}" y="{y + bar * len(runs) / 2 + 4}" text-anchor="end">'
            f"{html.escape(scenario)}</text>"
        )
        for i, (_, run) in enumerate(runs):
            value = run.get(scenario)
            if value is not None:
                w = max(1, value / top * width)
                svg.append(
                    f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}"'
                    f' fill="{COLOURS[i % len(COLOURS)]}"/>'
                )
                svg.append(
                    f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" font-size="10">'
                    f"{value:,.0f}</text>"
                )
            y += bar
        y += gap
    for i, (name, _) in enumerate(runs):
        svg.append(
            f'<rect x="{left}" y="{y + 20 * i}" width="12" height="12"'
            f' fill="{COLOURS[i % len(COLOURS)]}"/>'
        )
        svg.append(f'<text x="{left + 18}" y="{y + 20 * i + 11}">{html.escape(name)}</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
