"""The shared hyper-parameter checks: what they accept, and errors that name the parameter and the range."""
import math

import pytest

from mtl.checks import check_count, check_positive


def test_check_count_accepts_integral_values_in_range():
    assert check_count("steps", 3) == 3 and check_count("steps", 3.0) == 3
    assert check_count("warmup", 0, 0) == 0 and check_count("k", 5, 1, 5) == 5


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", None, math.nan, 6])
def test_check_count_rejects_with_the_name_and_range(value):
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 5\]"):
        check_count("k", value, 1, 5)


def test_check_positive():
    assert check_positive("lr", "0.5") == 0.5 and check_positive("c", 0, allow_zero=True) == 0.0
    for bad in (0, -1.0, math.inf, "x"):
        with pytest.raises(ValueError, match="lr must be"):
            check_positive("lr", bad)
