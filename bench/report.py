"""The bench's results: goals with pass/fail, a terminal table, ``results.json`` and a PNG a person can read."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Goal:
    name: str
    unit: str
    limit: float
    sign: str  # ">=", "<=" or "<"; "" for a contrast: a row measured to explain another, with no goal of its own

    def passes(self, value: float | None) -> bool:
        if not self.sign:
            return True
        if value is None:
            return False
        return {">=": value >= self.limit, "<=": value <= self.limit, "<": value < self.limit}[self.sign]

    def describe(self) -> str:
        return f"{self.sign} {self.limit:g}{self.unit}" if self.sign else "contrast"

    def verdict(self, value: float | None) -> str:
        return "" if not self.sign else "PASS" if self.passes(value) else "FAIL"


def route_summary(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each side over the pairs, and the ratio of every pair (A/B throughput)."""
    ratios = [pair["A"]["rps"] / pair["B"]["rps"] if pair["B"]["rps"] else 0.0 for pair in pairs]
    cpu_ratios = [pair["B"]["cpu_us"] / pair["A"]["cpu_us"] if pair["A"]["cpu_us"] else 0.0 for pair in pairs]

    def median(side: str, key: str) -> float:
        return round(float(statistics.median(pair[side][key] for pair in pairs)), 3)

    return {
        "ratios": [round(ratio, 3) for ratio in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        **{f"{side}_{key}": median(side, key) for side in "AB" for key in ("rps", "p50_ms", "p99_ms", "cpu_us")},
        "A_errors": sum(pair["A"]["socket_errors"] + pair["A"]["non_2xx"] for pair in pairs),
        "B_errors": sum(pair["B"]["socket_errors"] + pair["B"]["non_2xx"] for pair in pairs),
    }


def table(results: dict[str, Any], goals: dict[str, Goal]) -> str:
    head = (
        f"{'route':<34} {'A req/s':>9} {'B req/s':>9} {'A/B per pair':<20} {'ratio':>6} {'goal':>8} {'':4} "
        f"{'A p50/p99 ms':>14} {'B p50/p99 ms':>14} {'errors A/B':>10} {'CPU us/req A/B':>15} {'B/A':>5}"
    )
    lines = [head, "-" * len(head)]
    for key, route in results["routes"].items():
        s = route["summary"]
        goal = goals[key]
        verdict = goal.verdict(s["ratio"])
        per_pair = " ".join(f"{ratio:.2f}" for ratio in s["ratios"])
        lines.append(
            f"{route['label']:<34} {s['A_rps']:>9.0f} {s['B_rps']:>9.0f} {per_pair:<20} {s['ratio']:>6.2f} "
            f"{goal.describe():>8} {verdict:4} {s['A_p50_ms']:>6.2f}/{s['A_p99_ms']:<7.2f} "
            f"{s['B_p50_ms']:>6.2f}/{s['B_p99_ms']:<7.2f} {s['A_errors']:>4}/{s['B_errors']:<5} "
            f"{s['A_cpu_us']:>7.0f}/{s['B_cpu_us']:<7.0f} {s['cpu_ratio']:>5.2f}"
        )
    lines.append("")
    for key, label, value, detail in _other_rows(results):
        goal = goals[key]
        verdict = goal.verdict(value)
        shown = "n/a" if value is None else f"{value:.3g}{goal.unit}"
        lines.append(f"{label:<54} {shown:>10}   goal {goal.describe():<10} {verdict}\n    {detail}")
    rss = results.get("rss_mib", {})
    if rss:
        lines.append(
            "RSS per worker after the runs: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in rss.items())
        )
    return "\n".join(lines)


def _other_rows(results: dict[str, Any]) -> list[tuple[str, str, float | None, str]]:
    rows = []
    wrapper = results.get("wrapper", {})
    if wrapper:
        prod, single = wrapper["multiprocess"], wrapper["single_process"]
        detail = f"(single-process metrics: {single['overhead_ns'] / 1000:.2f} us; bare await {prod['bare_ns']:.0f} ns)"
        rows.append(
            ("wrapper", "guard wrapper per call (uvloop, gunicorn metrics)", prod["overhead_ns"] / 1000, detail)
        )
    ready = results.get("readiness", {})
    if ready:
        detail = (
            f"({ready['probes']} probes at {ready['rate']:.0f}/s, statuses {ready['statuses']}, "
            f"probe p99 {ready['p99_ms']} ms; all statements {ready['statements_per_second']:.1f}/s: "
            f"{ready['statements']})"
        )
        rows.append(("readiness", "DB queries/s/worker under 200 probes/s", ready["queries_per_second"], detail))
    start = results.get("start_to_ready", {})
    if start:
        detail = "(runs: " + ", ".join(f"{s:.2f}" for s in start["runs"]) + ")"
        rows.append(("start", "start to ready (gunicorn spawn to /health/ready 200)", start["median_seconds"], detail))
    return rows


def failing(results: dict[str, Any], goals: dict[str, Goal]) -> list[str]:
    names = [key for key, route in results["routes"].items() if not goals[key].passes(route["summary"]["ratio"])]
    return names + [key for key, _label, value, _detail in _other_rows(results) if not goals[key].passes(value)]


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def plot(results: dict[str, Any], goals: dict[str, Goal], path: Path) -> None:
    """Left: A/B throughput per route (bar: median, dots: pairs) with its goal. Right: p50 and p99, A beside B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = results["routes"]
    labels = [route["label"] for route in routes.values()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5))
    for i, (key, route) in enumerate(routes.items()):
        s = route["summary"]
        goal = goals[key]
        color = "#8c8c8c" if not goal.sign else "#4c9a5a" if goal.passes(s["ratio"]) else "#c0504d"
        left.bar(i, s["ratio"], color=color, width=0.6)
        left.scatter([i] * len(s["ratios"]), s["ratios"], color="black", s=12, zorder=3)
        if goal.sign:
            left.hlines(goal.limit, i - 0.4, i + 0.4, colors="black", linestyles="dashed", zorder=4)
        left.annotate(f"{s['ratio']:.2f}\n({'goal ' if goal.sign else ''}{goal.describe()})", (i, s["ratio"]), ha="center",
                      va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points",
                      bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})  # fmt: skip
    tallest = max(
        [goals[key].limit for key in routes] + [r for route in routes.values() for r in route["summary"]["ratios"]]
    )
    left.set_ylim(0, tallest * 1.2)  # room for the labels above the tallest bar
    left.axhline(1.0, color="grey", linewidth=0.8)
    left.set_xticks(range(len(labels)), labels, rotation=15, ha="right", fontsize=8)
    left.set_ylabel("throughput A / B (service / bare FastAPI)")
    left.set_title("Throughput ratio per route (dashed: goal; dots: each pair)")

    width = 0.2
    series = [("A_p50_ms", "A p50", "#1f77b4"), ("B_p50_ms", "B p50", "#aec7e8"),
              ("A_p99_ms", "A p99", "#d62728"), ("B_p99_ms", "B p99", "#ff9896")]  # fmt: skip
    for j, (field, name, color) in enumerate(series):
        xs = [i + (j - 1.5) * width for i in range(len(routes))]
        right.bar(xs, [route["summary"][field] for route in routes.values()], width, label=name, color=color)
    right.set_yscale("log")
    right.set_xticks(range(len(labels)), labels, rotation=15, ha="right", fontsize=8)
    right.set_ylabel("latency, ms (log scale), 64 connections")
    right.set_title("Latency percentiles, A (service) vs B (bare)")
    right.legend(fontsize=8)

    others = [f"{label}: {'n/a' if value is None else f'{value:.3g}{goals[key].unit}'} "
              f"(goal {goals[key].describe()}, {'PASS' if goals[key].passes(value) else 'FAIL'})"
              for key, label, value, _detail in _other_rows(results)]  # fmt: skip
    fig.suptitle(f"make bench @ {results['commit']} - {results['when']}", fontsize=11)
    fig.text(0.01, 0.01, "\n".join(others), fontsize=8, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
