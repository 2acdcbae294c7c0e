"""The report's refusal section: what the model turns away, and what another threshold would give.

Reads the per-image scores that `digits evaluate --json` wrote for the eval split, the MNIST test
digits of the classes, and the MNIST test set's other digits (``other.json``).
"""

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from digits_core.errors import DigitsError
from digits_core.refusal import tradeoff
from digits_report.figures import COLORS, save

KNOWN = {"eval": "eval split", "test": "MNIST test digits of the classes"}


def refusal_section(results: dict[str, dict], eval_dir: Path, out: Path) -> tuple[dict, str]:
    """Return the section's numbers and draw its trade-off curve; ``results`` holds eval, test, other."""
    for name, result in results.items():
        if "refusal" not in result or any("score" not in p for p in result["predictions"]):
            raise DigitsError(f"{eval_dir / f'{name}.json'} has no refusal scores: run `make evaluate` again")
    rules = {name: (r["refusal"]["rule"], r["refusal"]["score"]) for name, r in results.items()}
    if len(set(map(str, rules.values()))) != 1:
        raise DigitsError(
            f"the evaluations in {eval_dir} come from models with different refusal rules: "
            "run `make evaluate` again"
        )
    rule, score = rules["other"]
    numbers = {
        "rule": rule,
        "score": score,
        "refused": {
            name: {k: r["refusal"][k] for k in ("n", "refused", "share_refused")}
            for name, r in results.items()
        },
        "other_per_digit": results["other"]["refusal"]["per_digit"],
    }
    return numbers, plot_tradeoff(results, rule, score, out)


def floored_tradeoff(known: list[dict], other: list[dict], floor: float) -> dict[str, np.ndarray]:
    """:func:`~digits_core.refusal.tradeoff` of evaluated predictions (each with its ``score`` and
    ``probs``) under a rule whose floor on the top digit's probability is ``floor``: an image under
    the floor is refused at every threshold, whatever its score."""

    def scores(predictions: list[dict]) -> np.ndarray:
        return np.array([p["score"] if max(p["probs"]) >= floor else -np.inf for p in predictions])

    curve = tradeoff(scores(known), scores(other))
    finite = curve["threshold"] > -np.inf  # a threshold of -inf would accept what the floor refuses
    return {key: values[finite] for key, values in curve.items()}


def plot_tradeoff(results: dict[str, dict], rule: dict | None, score: str, out: Path) -> str:
    """Known digits accepted against other digits refused over every threshold, with the rule's
    floor on the top digit's probability kept; the rule's point marked."""
    floor = rule.get("min_probability", 0.0) if rule is not None else 0.0
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    lowest = 0.9
    kept = {name: 1 - results[name]["refusal"]["share_refused"] for name in KNOWN} if rule is not None else {}
    for name, label in KNOWN.items():
        curve = floored_tradeoff(results[name]["predictions"], results["other"]["predictions"], floor)
        ax.plot(curve["other_refused"], curve["known_accepted"], color=COLORS[name], label=label)
        if rule is not None:
            accepted = kept[name]
            refused = results["other"]["refusal"]["share_refused"]
            ax.plot([refused], [accepted], "o", color=COLORS[name], markeredgecolor="black", zorder=3)
            ax.annotate(
                f"{accepted:.4f} kept, {refused:.4f} refused",
                (refused, accepted),
                textcoords="offset points",
                xytext=(-8, 8 if accepted == max(kept.values()) else -14),  # the higher dot's label above
                ha="right",
                fontsize=8,
            )
            lowest = min(lowest, accepted - 0.02)
    if rule is not None:
        ax.axhline(rule["known_accept_rate"], color="#999", linestyle=":", linewidth=1)
    ax.set_xlim(0, 1.005)
    ax.set_ylim(lowest, 1.002)
    ax.set_xlabel("share of MNIST test digits that are not a class, refused")
    ax.set_ylabel("share of known digits accepted")
    chosen = "dots: the model's threshold" if rule is not None else "the model has no refusal rule"
    kept_floor = f", top digit's probability at least {floor:g}" if floor else ""
    ax.set_title(f"Thresholds on {score}{kept_floor} ({chosen})", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # curves fill the axes
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, out / "refusal_tradeoff.png")
