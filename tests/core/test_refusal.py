"""The refusal rule: its scores, its metadata form, choosing a threshold, the trade-off curve."""

import math

import numpy as np
import pytest

from digits_core.refusal import RefusalRule, choose_threshold, scores, tradeoff

LOGITS = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-3.0, 5.0, 1000.0]], dtype=np.float32)


def test_scores_are_max_probability_max_logit_and_energy():
    e2 = math.exp(2)
    np.testing.assert_allclose(scores(LOGITS, "max_probability"), [e2 / (e2 + 2), 1 / 3, 1.0], rtol=1e-12)
    np.testing.assert_array_equal(scores(LOGITS, "max_logit"), [2.0, 1.0, 1000.0])
    np.testing.assert_allclose(
        scores(LOGITS, "energy"), [math.log(e2 + 2), 1 + math.log(3), 1000.0], rtol=1e-12
    )
    assert scores(LOGITS, "energy").dtype == np.float64
    with pytest.raises(ValueError, match="unknown score 'entropy': choose one of max_probability, max_logit"):
        scores(LOGITS, "entropy")


def test_rule_round_trips_and_accepts_at_the_threshold():
    rule = RefusalRule("max_logit", 1.5, 0.99, "val")
    assert rule.to_json() == (
        '{"score": "max_logit", "threshold": 1.5, "known_accept_rate": 0.99, "chosen_on": "val", '
        '"min_probability": 0.0}'
    )
    assert RefusalRule.from_json(rule.to_json()) == rule
    logits = np.array([[1.4999, 0.0, 0.0], [1.5, 0.0, 0.0], [7.0, 6.9, 0.0]])
    assert rule.accepts(logits).tolist() == [False, True, True]


def test_a_floor_on_the_top_probability_refuses_a_digit_torn_between_two():
    rule = RefusalRule("max_logit", 1.5, 0.99, "val", min_probability=0.6)
    assert RefusalRule.from_json(rule.to_json()) == rule
    # Like a digit (max_logit 7), but as much an 8 as a 0: refused; clearly one digit: accepted.
    logits = np.array([[7.0, 6.9, 0.0], [7.0, 0.0, 0.0], [1.0, -5.0, -5.0]])
    assert scores(logits, "max_probability")[0] < 0.6 < scores(logits, "max_probability")[1]
    assert rule.accepts(logits).tolist() == [False, True, False]


def test_a_rule_written_before_the_floor_existed_has_none():
    old = '{"score": "energy", "threshold": 1.5, "known_accept_rate": 0.99, "chosen_on": "val"}'
    assert RefusalRule.from_json(old) == RefusalRule("energy", 1.5, 0.99, "val", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"score": "energy", "threshold": 1}', "missing known_accept_rate, chosen_on"),
        (
            '{"score": "margin", "threshold": 1, "known_accept_rate": 0.99, "chosen_on": "val"}',
            "score must be one of max_probability, max_logit, energy, got 'margin'",
        ),
        (
            '{"score": "energy", "threshold": "1", "known_accept_rate": 0.99, "chosen_on": "val"}',
            "threshold must be a finite number, got '1'",
        ),
        (
            '{"score": "energy", "threshold": NaN, "known_accept_rate": 0.99, "chosen_on": "val"}',
            "threshold must be a finite number, got nan",
        ),
        (
            '{"score": "energy", "threshold": 1, "known_accept_rate": 0, "chosen_on": "val"}',
            r"known_accept_rate must be a number in \(0, 1\], got 0",
        ),
        (
            '{"score": "energy", "threshold": 1, "known_accept_rate": 0.9, "chosen_on": ""}',
            "chosen_on must name a split, got ''",
        ),
        (
            '{"score": "energy", "threshold": 1, "known_accept_rate": 0.9, "chosen_on": "val", '
            '"min_probability": 1}',
            r"min_probability must be a number in \[0, 1\), got 1",
        ),
        (
            '{"score": "energy", "threshold": 1, "known_accept_rate": 0.9, "chosen_on": "val", "margin": 2}',
            "unknown margin",
        ),
    ],
)
def test_malformed_rules_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        RefusalRule.from_json(text)


def test_choose_threshold_keeps_the_rate_with_a_margin():
    known = np.arange(100, dtype=np.float64)[::-1]  # 99..0
    assert choose_threshold(known, 0.99) == 0.5  # accepts 99 of 100, halfway to the first refused
    assert choose_threshold(known, 0.985) == 0.5  # 98.5 rounds up to 99 kept
    assert choose_threshold(known, 0.5) == 49.5
    assert choose_threshold(known, 1.0) == -0.0005  # just below the lowest score
    assert choose_threshold(np.array([3.0, 3.0, 3.0, 1.0]), 0.5) == 3.0  # ties accept more, not fewer
    with pytest.raises(ValueError, match="need known scores"):
        choose_threshold(np.array([]), 0.99)


def test_tradeoff_counts_every_threshold():
    curve = tradeoff(np.array([0.9, 0.8, 0.5]), np.array([0.1, 0.5, 0.6, 0.95]))
    assert curve["threshold"].tolist() == [0.1, 0.5, 0.6, 0.8, 0.9, 0.95, math.inf]
    np.testing.assert_allclose(curve["known_accepted"], [1, 1, 2 / 3, 2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(curve["other_refused"], [0, 0.25, 0.5, 0.75, 0.75, 0.75, 1])
