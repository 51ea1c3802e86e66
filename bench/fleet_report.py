"""The fleet simulator's report: a Markdown table of the run and a small PNG of its timeline."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.fleet_run import Run


def _ms(p: dict[str, float], *keys: str) -> str:
    return " / ".join(f"{p[k]:,.0f}" if p[k] == p[k] else "n/a" for k in keys)


def _resource(run: Run, name: str) -> dict[str, float]:
    rows = [
        r["resources"][name] for r in run.timeline if r["resources"].get(name, {}).get("rss_mb")
    ]
    if not rows:
        return {"cpu": float("nan"), "rss_first": float("nan"), "rss_last": float("nan")}
    head = rows[: max(1, len(rows) // 10)]
    tail = rows[-max(1, len(rows) // 10) :]
    return {
        "cpu": statistics.fmean(r["cpu"] for r in rows),
        "cpu_max": max(r["cpu"] for r in rows),
        "rss_first": statistics.fmean(r["rss_mb"] for r in head),
        "rss_last": statistics.fmean(r["rss_mb"] for r in tail),
        "rss_max": max(r["rss_mb"] for r in rows),
    }


def table(run: Run, command: str) -> str:
    """The run as a Markdown table, with the command that made it."""
    s, a = run.summary, run.args
    load = [r["load1"] for r in run.timeline]
    lines = [
        f"Fleet run: {a.kiosks:,} kiosks in {a.procs} simulator process(es),"
        f" {a.kiosks_per_shelf:,} kiosks a shelf, {a.items_per_shelf} items a shelf,"
        f" {a.backend}, {a.minutes:g} min steady at {a.walkups:g} walk-ups/s."
        f" Machine: 2 cores shared with other work"
        f" (1-min load average {min(load, default=0):.1f} to {max(load, default=0):.1f}).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| fleet connected from cold (seed {s['seed_s']:.0f} s before) | {s['ramp_s']:.1f} s |",
        f"| kiosks connected at the end | {s['totals']['connected']:,} of {a.kiosks:,} |",
        f"| connection drops outside fault windows | {s['drops_outside_faults']} |",
        f"| reconnects (all causes) | {s['totals']['connects'] - s['connects_at_start']:,} |",
        f"| scans and session ends sent / decided by central | {s['events_sent']:,}"
        f" / {s['events_decided']:,} |",
        f"| verdict latency p50 / p95 / p99 / max, outside faults and 30 s after (ms) |"
        f" {_ms(s['verdict_ms_quiet'], 'p50', 'p95', 'p99', 'max')} |",
        f"| verdict latency p50 / p95 / p99 / max, timed part incl. its faults (ms) |"
        f" {_ms(s['verdict_ms'], 'p50', 'p95', 'p99', 'max')} |",
        f"| verdict latency p50 / p95 / p99 / max, whole run incl. end faults (ms) |"
        f" {_ms(s['verdict_ms_all'], 'p50', 'p95', 'p99', 'max')} |",
        f"| availability changes measured (outside faults), receivers per change |"
        f" {s['fanout_changes']:,}, {s['fanout_receivers_per_change']:,} |",
        f"| changes that missed a subscribed kiosk | {s['fanout_changes_short']} |",
        f"| availability decided → kiosk has it, per delivery p50 / p99 / max (ms) |"
        f" {_ms(s['fanout_ms'], 'p50', 'p99', 'max')} |",
        f"| availability decided → last kiosk of the shelf has it, p50 / p99 / max (ms) |"
        f" {_ms(s['fanout_to_all_ms'], 'p50', 'p99', 'max')} |",
        f"| availability decided → first kiosk has it (central's part), p50 / p99 / max (ms) |"
        f" {_ms(s['fanout_first_ms'], 'p50', 'p99', 'max')} |",
    ]
    for f in run.faults:
        if f["action"] == "broker-restart":
            back = f.get("all_back_after_stop_s")
            lines.append(
                f"| broker restart at {f['at']:.0f} s: broker down / all kiosks back, synced,"
                f" outboxes empty after restart | {f['broker_down_s']:.1f} s /"
                f" {'not in 120 s' if back is None else f'{back:.1f} s'} |"
            )
        elif f["action"] == "central-kill":
            lines.append(
                f"| central kill -9 at {f['at']:.0f} s, restarted and answering after |"
                f" {f['central_down_s']:.1f} s |"
            )
        else:
            lines.append(f"| {f['action']} at {f['at']:.0f} s | done in {f['done_s']:.1f} s |")
    lines += [
        f"| outboxes drained after walk-ups stopped | {s['drain_s']:.1f} s |"
        if s["drain_s"] is not None
        else "| outboxes drained after walk-ups stopped | NOT in 60 s |",
        f"| kiosks whose availability differs from central's at the end | {s['stale_kiosks']} |",
        f"| retained availability copies differing from central's at the end |"
        f" {len(s['stale_retained'])} |",
        f"| lost scans (unanswered, or sent but never decided) | {s['lost']} |",
        f"| doubled effects (`violations()`) | {s['violations']} |",
    ]
    for name in ("broker", "central", "simulator"):
        r = _resource(run, name)
        lines.append(
            f"| {name} CPU mean / max (% of one core) |"
            f" {r['cpu']:.0f} / {r.get('cpu_max', 0):.0f} |"
        )
        lines.append(
            f"| {name} RSS first 10 % / last 10 % / max of run (MB) |"
            f" {r['rss_first']:.0f} / {r['rss_last']:.0f} / {r.get('rss_max', 0):.0f} |"
        )
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(s["final"]["reasons"].items()))
    lines += [
        "",
        f"Verdicts by reason: {reasons}. Repeated verdicts ignored by kiosks:"
        f" {s['final']['repeated_verdicts']:,}. Checks: {s['checks']}.",
        f"Stale at the end (kiosk, item, its seq, central's): {s['stale_examples']};"
        f" retained copies (item, broker's seq, central's): {s['stale_retained']}.",
        "",
        f"Command: `{command}`",
    ]
    return "\n".join(lines)


def plot(run: Run, path: Path) -> None:
    """Four panels over time: latencies, connections, CPU, memory; faults as lines."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    timeline = run.timeline
    t = [r["t"] for r in timeline]
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True, dpi=72)
    lat = run.summary.get("latency_series", {})
    ax = axes[0]
    if lat:
        ax.plot(lat["t"], lat["verdict_p50"], label="verdict p50", lw=1)
        ax.plot(lat["t"], lat["verdict_p99"], label="verdict p99", lw=1)
        ax.plot(lat["t"], lat["fanout_p99"], label="availability p99", lw=1)
    ax.set_yscale("log")
    ax.set_ylabel("ms (10 s buckets)")
    ax.legend(fontsize=7, loc="upper left")
    ax = axes[1]
    ax.plot(t, [r["connected"] for r in timeline], label="connected kiosks", lw=1)
    start = run.summary.get("connects_at_start", 0)
    ax.plot(t, [r["connects"] - start for r in timeline], label="reconnects (cumulative)", lw=1)
    ax.legend(fontsize=7, loc="center left")
    ax.set_ylabel("kiosks")
    for axis, key, unit in ((axes[2], "cpu", "% of one core"), (axes[3], "rss_mb", "RSS MB")):
        for group in ("broker", "central", "simulator"):
            axis.plot(
                t, [r["resources"].get(group, {}).get(key, 0) for r in timeline], label=group, lw=1
            )
        axis.set_ylabel(unit)
        axis.legend(fontsize=7, loc="upper left")
    axes[3].set_xlabel("seconds into the steady part")
    for f in run.faults:
        for axis in axes:
            axis.axvline(f["at"], color="grey", ls=":", lw=1)
        axes[0].annotate(f["action"], (f["at"], 1), fontsize=6, rotation=90, va="bottom")
    fig.suptitle(
        f"{run.args.kiosks:,} kiosks, {run.args.backend}, {run.args.walkups:g} walk-ups/s"
        " (2 shared cores)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
