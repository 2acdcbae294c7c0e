"""The checks of configuration values that every package's options share."""

from pathlib import Path

import pytest

from digits_core.checks import check_path
from digits_core.errors import ConfigError


@pytest.mark.parametrize("value", ["out", "2024", " x ", "-", Path("out")])
def test_a_path_to_write_is_any_name_that_is_not_blank(value):
    assert check_path("output_dir", value) == str(value)


@pytest.mark.parametrize("value", ["", " ", "\t\n", None, True, 2024, ["out"]])
def test_blank_names_and_values_that_are_no_names_are_refused(value):
    with pytest.raises(ConfigError) as caught:
        check_path("output_dir", value)
    assert str(caught.value) == f"output_dir must name a path to write, got {value!r}"
    assert caught.value.with_flags() == f"--output-dir must name a path to write, got {value!r}"
