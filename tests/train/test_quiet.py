"""Quieting third-party chatter is scoped: logger levels and warning filters come back afterwards."""

import logging
import warnings

import pytest

from digits_train.quiet import quiet

LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning", "torch.onnx")
LEVELS_BEFORE = {name: logging.getLogger(name).level for name in LOGGERS}  # at collection, before any fit


def test_levels_and_filters_hold_only_within_the_block():
    logger = logging.getLogger("digits-test.chatty")
    logger.setLevel(logging.INFO)
    with quiet({"digits-test.chatty": logging.ERROR}, [(r"chatter", UserWarning)]):
        assert logger.level == logging.ERROR
        warnings.warn("chatter from a library", UserWarning, stacklevel=1)  # ignored here
        with pytest.raises(UserWarning, match="other news"):
            warnings.warn("other news", UserWarning, stacklevel=1)  # still an error, as configured
    assert logger.level == logging.INFO
    with pytest.raises(UserWarning, match="chatter"):
        warnings.warn("chatter from a library", UserWarning, stacklevel=1)


def test_settings_come_back_when_the_block_fails():
    logger = logging.getLogger("digits-test.failing")
    logger.setLevel(logging.DEBUG)
    filters = list(warnings.filters)
    with (
        pytest.raises(RuntimeError, match="boom"),
        quiet({"digits-test.failing": logging.ERROR}, [("x", Warning)]),
    ):
        raise RuntimeError("boom")
    assert logger.level == logging.DEBUG
    assert warnings.filters == filters


def test_fit_and_export_leave_logger_levels_as_they_found_them(trained):
    assert trained["summary"]["epochs_run"] == 2  # fit and export have run in this process
    assert {name: logging.getLogger(name).level for name in LOGGERS} == LEVELS_BEFORE
