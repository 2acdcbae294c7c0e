"""The refusal rule: when an image does not look like any of the classes, say so.

A model may carry a rule in its ``refusal`` metadata (``contract.META_REFUSAL``): which score to
compute from the logits, the threshold at or above which an image is accepted as one of the
classes, and the least probability its top digit must have. The first says the image looks like a
digit at all; the second that it looks like one digit, not like two (a 0 with a stroke across its
waist can look like an 8 as much as a 0). Training chooses the rule; every consumer applies it
with :meth:`RefusalRule.accepts`, so all decide the same way. Scores, higher meaning "more like a
known digit":

- ``max_probability``: the largest softmax probability;
- ``max_logit``: the largest logit;
- ``energy``: logsumexp of the logits (the negated free energy).
"""

import json
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

SCORES: tuple[str, ...] = ("max_probability", "max_logit", "energy")
BASELINE_SCORE = "max_probability"
"""The score shown for a model without a rule: its confidence, which accepts everything."""


def scores(logits: np.ndarray, kind: str) -> np.ndarray:
    """Return the ``kind`` score of each row of ``logits`` (N, C) as float64 (N,)."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=1)
    if kind == "max_logit":
        return top
    total = np.exp(logits - top[:, None]).sum(axis=1)  # shifted by the max: no overflow
    if kind == "max_probability":
        return 1.0 / total
    if kind == "energy":
        return top + np.log(total)
    raise ValueError(f"unknown score {kind!r}: choose one of {', '.join(SCORES)}")


@dataclass(frozen=True)
class RefusalRule:
    """Accept an image when its ``score`` is at least ``threshold`` and the probability of its top
    digit at least ``min_probability`` (0: any).

    ``known_accept_rate`` is the share of known digits the rule was chosen to accept, on the split
    named by ``chosen_on``. Raises ``ValueError`` saying what is wrong when a field is.
    """

    score: str
    threshold: float
    known_accept_rate: float
    chosen_on: str = "val"
    min_probability: float = 0.0

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if not _is_number(self.threshold) or not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
        if not _is_number(self.known_accept_rate) or not 0 < self.known_accept_rate <= 1:
            raise ValueError(f"known_accept_rate must be a number in (0, 1], got {self.known_accept_rate!r}")
        if not isinstance(self.chosen_on, str) or not self.chosen_on:
            raise ValueError(f"chosen_on must name a split, got {self.chosen_on!r}")
        if not _is_number(self.min_probability) or not 0 <= self.min_probability < 1:
            raise ValueError(f"min_probability must be a number in [0, 1), got {self.min_probability!r}")

    def accepts(self, logits: np.ndarray) -> np.ndarray:
        """Return a bool array (N,): which rows of ``logits`` (N, C) this rule accepts."""
        accepted = scores(logits, self.score) >= self.threshold
        if self.min_probability:
            accepted &= scores(logits, "max_probability") >= self.min_probability
        return accepted

    def condition(self, digits: int = 6) -> str:
        """What an accepted image meets, as one line: ``max_logit >= -0.8 and top probability >= 0.8``."""
        said = f"{self.score} >= {self.threshold:.{digits}g}"
        return said + (f" and top probability >= {self.min_probability:g}" if self.min_probability else "")

    def to_json(self) -> str:
        """The metadata value: a JSON object with the five fields."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "RefusalRule":
        """Parse a metadata value; raise ``ValueError`` saying what is wrong with it.

        ``min_probability`` may be missing: rules written before it existed had none (0).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {text!r}")
        missing = [key for key in ("score", "threshold", "known_accept_rate", "chosen_on") if key not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise ValueError(f"unknown {', '.join(unknown)}")
        return cls(**data)


def choose_threshold(known_scores: np.ndarray, accept_rate: float) -> float:
    """Return a threshold that accepts the top ``accept_rate`` share of ``known_scores`` (rounded up).

    It lies halfway between the lowest score kept and the next one down, so that another
    runtime's float rounding of the same image cannot flip the decision at the edge. With
    ``accept_rate`` 1 it lies just below the lowest score.
    """
    ordered = np.sort(np.asarray(known_scores, dtype=np.float64))[::-1]
    if not len(ordered) or not 0 < accept_rate <= 1:
        raise ValueError("need known scores and an accept rate in (0, 1]")
    keep = math.ceil(accept_rate * len(ordered) - 1e-9)  # tolerance: 0.99 * 100 is 99.00000000000001
    lowest = ordered[keep - 1]
    below = ordered[keep] if keep < len(ordered) else lowest - 1e-3 * max(1.0, abs(lowest))
    return float((lowest + below) / 2)


def tradeoff(known_scores: np.ndarray, other_scores: np.ndarray) -> dict[str, np.ndarray]:
    """The trade-off over every threshold: share of known digits accepted vs others refused.

    Returns ``threshold`` (ascending, every distinct score, then +inf), ``known_accepted`` and
    ``other_refused`` at each, as arrays of equal length.
    """
    known = np.sort(np.asarray(known_scores, dtype=np.float64))
    other = np.sort(np.asarray(other_scores, dtype=np.float64))
    thresholds = np.append(np.unique(np.concatenate([known, other])), np.inf)
    return {
        "threshold": thresholds,
        "known_accepted": 1.0 - np.searchsorted(known, thresholds, side="left") / len(known),
        "other_refused": np.searchsorted(other, thresholds, side="left") / len(other),
    }


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
