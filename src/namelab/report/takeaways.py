"""The report's "Takeaways" box: what the measurements say, in plain words, from the summary's numbers.

    sentences = takeaways(summary)     # ["Ranked by test accuracy ...: GRU 81.75 %, ...", ...]

Each sentence is built from the numbers ``namelab compare`` wrote into summary.json and
follows the verdicts the findings reached (the same rules as the rest of the report), so
the box can never say more than the tables below it. A part whose suite did not run is
left out.
"""

from __future__ import annotations

from .common import model_title, suites_of


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _points(value: float) -> str:
    return f"{100 * value:.1f} points"


def _finding(summary: dict, key: str) -> dict | None:
    return next((f for f in summary.get("findings", []) if f.get("key") == key), None)


def ranking_sentence(summary: dict) -> str | None:
    results = summary.get("results") or {}
    ranked = sorted(
        (m for m in summary["models"] if (results.get(m) or {}).get("test_accuracy", {}).get("mean") is not None),
        key=lambda m: -results[m]["test_accuracy"]["mean"],
    )
    if not ranked:
        return None
    seeds = len(summary["seeds"])
    listed = ", ".join(f"{model_title(m)} {_pct(results[m]['test_accuracy']['mean'])}" for m in ranked)
    return (
        f"Ranked by test accuracy on names none of them saw in training "
        f"({'mean of ' + str(seeds) + ' seeds' if seeds > 1 else 'one seed'}): {listed}."
    )


def gating_sentence(summary: dict) -> str | None:
    """Whether the gated cells beat the plain RNN, and whether the two gated cells differ, as the finding judged it."""
    finding = _finding(summary, "accuracy_ranking")
    results = summary.get("results") or {}
    if finding is None or "rnn" not in results:
        return None
    parts, seeds = [], []
    for pair in finding.get("pairs", []):
        gated = {pair["first"], pair["second"]} - {"rnn"}
        if "rnn" not in (pair["first"], pair["second"]) or len(gated) != 1 or pair.get("mean") is None:
            continue
        cell = gated.pop()
        gain = pair["mean"] if pair["first"] == cell else -pair["mean"]
        clear = pair["outcome"] != "noise"
        f1_gain = results[cell]["test_macro_f1"]["mean"] - results["rnn"]["test_macro_f1"]["mean"]
        wins = pair["positive"] if pair["first"] == cell else pair["negative"]
        parts.append((model_title(cell), gain, clear, f1_gain))
        seeds.append(f"{wins}/{pair['n']}")
    if not parts:
        return None
    if all(clear and gain > 0 for _, gain, clear, _ in parts):
        gains = " and ".join(f"the {cell} by {_points(gain)}" for cell, gain, _, _ in parts)
        f1 = " and ".join(f"{100 * f1_gain:+.1f}" for _, _, _, f1_gain in parts)
        sentence = (
            f"Gating helps: {gains} of accuracy over the plain RNN ({' and '.join(seeds)} seeds), and more on the "
            f"small languages (macro-F1 {f1} points)."
        )
    elif any(clear and gain < 0 for _, gain, clear, _ in parts):
        sentence = "Gating does not help here: the plain RNN is clearly ahead of " + " and ".join(
            f"the {cell} ({_points(-gain)})" for cell, gain, clear, _ in parts if clear and gain < 0
        ) + "."
    else:
        sentence = "Whether gating helps is not clear from these runs: " + ", ".join(
            f"{cell} − RNN {100 * gain:+.1f} points" for cell, gain, _, _ in parts
        ) + ", within the noise of the seeds."
    between = next(
        (p for p in finding.get("pairs", []) if {p["first"], p["second"]} == {"lstm", "gru"} and p.get("mean") is not None),
        None,
    )
    if between is not None:
        if between["outcome"] == "noise":
            sentence += (
                f" The LSTM and the GRU are tied within the noise ({_points(abs(between['mean']))} apart, "
                f"{between['reason']})."
            )
        else:
            ahead, behind = ("LSTM", "GRU") if between["mean"] > 0 else ("GRU", "LSTM")
            sentence += f" The {ahead} is ahead of the {behind} by {_points(abs(between['mean']))} on every seed."
    return sentence


def best_model_sentence(summary: dict) -> str | None:
    rows = (summary.get("accuracy") or {}).get("rows") or {}
    rows = {key: row for key, row in rows.items() if row.get("test_accuracy", {}).get("mean") is not None}
    if not rows:
        return None
    ordered = sorted(rows, key=lambda key: -rows[key]["test_accuracy"]["mean"])
    best, rest = rows[ordered[0]], ordered[1:]
    sentence = (
        f"The most accurate model is the {best['title']}: {_pct(best['test_accuracy']['mean'])} test accuracy and "
        f"{_pct(best['test_macro_f1']['mean'])} macro-F1"
    )
    if rest:
        runner = rows[rest[0]]
        gap = best["test_accuracy"]["mean"] - runner["test_accuracy"]["mean"]
        sentence += f", {_points(gap)} above the {runner['title']} ({_pct(runner['test_accuracy']['mean'])})"
    return sentence + "."


def calibration_sentence(summary: dict) -> str | None:
    rows = (summary.get("accuracy") or {}).get("rows") or {}
    rows = {key: row for key, row in rows.items() if (row.get("ece_after") or {}).get("mean") is not None}
    if not rows:
        return None
    best = max(rows.values(), key=lambda row: row["test_accuracy"]["mean"])
    cells = (summary.get("accuracy") or {}).get("seed_cells_calibration") or {}
    worst_before = max((c["ece_before"]["mean"] for c in cells.values() if c.get("ece_before")), default=None)
    sentence = (
        f"Its probabilities can be read as probabilities after temperature scaling: the expected calibration "
        f"error on test is {_pct(best['ece_after']['mean'])} ({_pct(best['ece_before']['mean'])} before scaling)"
    )
    if worst_before is not None:
        after = [c["ece_after"]["mean"] for c in cells.values() if c.get("ece_after")]
        sentence += (
            f"; for the single cells it falls from up to {_pct(worst_before)} to "
            f"{100 * min(after):.1f}–{_pct(max(after))}"
        )
    coverage = best.get("coverage", {}).get("mean")
    if coverage is not None:
        sentence += (
            f". Its 90 % prediction sets hold the true language for {_pct(coverage)} of test names, with "
            f"{best['mean_set_size']['mean']:.1f} languages on average"
        )
    return sentence + "."


def original_report_sentence(summary: dict) -> str | None:
    findings = summary.get("findings") or []
    if not findings:
        return None
    counts = {verdict: sum(f["verdict"] == verdict for f in findings)
              for verdict in ("supported", "not supported", "inconclusive")}
    wrong = [f["claim"].split(" (")[0] for f in findings if f["verdict"] == "not supported"]
    verbs = {"supported": ("holds", "hold"), "not supported": ("does not", "do not"),
             "inconclusive": ("cannot be decided from these runs", "cannot be decided from these runs")}
    said = [f"{n} {verbs[v][n != 1]}" for v, n in counts.items()]
    sentence = f"Of the original report's {len(findings)} claims checked here, {said[0]}, {said[1]} and {said[2]}"
    sentence += (": not reproduced — " + "; ".join(wrong) + "." if wrong else ".")
    levels = _finding(summary, "accuracy_levels")
    rows = [r for r in (levels or {}).get("rows", []) if r.get("train") and r.get("test")]
    if rows:
        first, others = rows[0], rows[1:]
        sentence += (
            f" Its accuracies were one run's training accuracy: here the {model_title(first['model'])} reaches "
            f"{_pct(first['train']['mean'])} on its training names but {_pct(first['test']['mean'])} on unseen ones"
        )
        if others:
            sentence += " (" + ", ".join(
                f"{model_title(r['model'])} {100 * r['train']['mean']:.1f} / {_pct(r['test']['mean'])}" for r in others
            ) + ")"
        sentence += "."
    return sentence


def takeaways(summary: dict) -> list[str]:
    """The plain-language conclusions, most important first; empty when the summary holds nothing to conclude."""
    sentences = []
    if summary.get("quick"):
        sentences.append("This is a --quick smoke run (few epochs, one seed): the numbers below are too rough to judge.")
    parts = [ranking_sentence, gating_sentence, best_model_sentence, calibration_sentence, original_report_sentence]
    if "seed" not in suites_of(summary):
        parts = [best_model_sentence, calibration_sentence, original_report_sentence]
    sentences += [s for s in (part(summary) for part in parts) if s]
    return sentences
