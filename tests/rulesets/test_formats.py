from __future__ import annotations

import pytest

from service.rulesets.formats import check_cn_province, check_gbt4754, check_uscc, uscc_check_character


def test_uscc_check_character():
    assert check_uscc("91330106MA2B3C4D5D") is None
    assert "check character" in check_uscc("91330106MA2B3C4D5E")
    assert check_uscc("91330106MA2B3C4D5") is not None  # 17 characters
    assert check_uscc("91330106MA2B3C4D5I") is not None  # I is not in the alphabet
    assert uscc_check_character("91110108MA01ABCD1") == "E"


@pytest.mark.parametrize("code, ok", [("C3670", True), ("F5174", True), ("B0610", True), ("A01", True),
                                      ("C0610", False), ("Z1234", False), ("C3", False), ("C367012", False)])
def test_gbt4754(code, ok):
    assert (check_gbt4754(code) is None) == ok


def test_provinces():
    assert check_cn_province("广西壮族自治区") is None
    assert check_cn_province("浙江") is not None
