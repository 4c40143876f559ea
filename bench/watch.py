"""The rush as Prometheus saw it: the same run's Prometheus (harness/prometheus.py, scraping
every second) is asked, after the closed-loop and open-loop rushes, for what an operator would
graph, and ./bin/bench draws it next to its JSON (results-<run>-prometheus.png)."""

from pathlib import Path

from harness.prometheus import Prometheus

WINDOW = "3s"  # rates over three one-second scrapes
QUERIES = {
    "enroll outcomes/s": f"sum by (result) (rate(enroll_outcomes_total[{WINDOW}]))",
    "gateway p99 ms (POST enrollments)": (
        "1000 * histogram_quantile(0.99, sum by (le) (rate(http_server_duration_bucket"
        f'{{http_route="/enroll_api/users/:user_id/enrollments"}}[{WINDOW}])))'
    ),
    "writer-lock wait p99 ms": (
        "1000 * histogram_quantile(0.99, sum by (le)"
        f" (rate(writer_lock_wait_seconds_bucket[{WINDOW}])))"
    ),
    "requests/s through the enroll gateway": (
        f'sum(rate(http_server_duration_count{{http_route=~"/enroll_api/.*"}}[{WINDOW}]))'
    ),
}


def rush_as_seen(prometheus: Prometheus, start: float, end: float) -> dict:
    """Each query's series over [start, end], a point a second: {query: {label: [[t, v]]}}."""
    prometheus.scraped_after(end)
    seen: dict = {}
    for name, promql in QUERIES.items():
        rows = prometheus.query_range(promql, start, end, 1)
        seen[name] = {
            (row["metric"].get("result") or "all"): [
                [float(t) - start, float(v)] for t, v in row["values"] if v not in ("NaN", "+Inf")
            ]
            for row in rows
        }
    return seen


def plot(seen: dict, marks: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(QUERIES)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 9), sharex=True, constrained_layout=True)
    for ax, name in zip(axes, names, strict=True):
        for label, points in sorted(seen[name].items()):
            ax.plot([t for t, _ in points], [v for _, v in points], label=label)
        ax.set_ylabel(name, fontsize=8)
        ax.set_ylim(bottom=0)
        for mark, at in marks.items():
            ax.axvline(at, color="grey", linestyle=":")
            ax.text(at, ax.get_ylim()[1] * 0.95, f" {mark}", fontsize=7, va="top", color="grey")
        if len(seen[name]) > 1:
            ax.legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel("seconds since the closed-loop rush began")
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
