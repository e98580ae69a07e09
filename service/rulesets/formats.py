"""Named string formats a ruleset's input can declare (`format: uscc`, ...).

These check the *shape* of identifiers core banking sends; they hold no credit policy.
"""
from __future__ import annotations

import re

# GB 32100-2015 统一社会信用代码: 18 characters from this alphabet (no I, O, S, V, Z).
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUW-Y]{18}$")


def uscc_check_character(first17: str) -> str:
    """The check character (18th) for the first 17 characters of a 统一社会信用代码."""
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(first17, _USCC_WEIGHTS))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def check_uscc(value: str) -> str | None:
    if not _USCC_RE.match(value):
        return "must be 18 characters from 0-9 A-H J-N P-R T U W-Y (统一社会信用代码)"
    if uscc_check_character(value[:17]) != value[17]:
        return "check character does not match (GB 32100-2015 统一社会信用代码校验码)"
    return None


# GB/T 4754-2017 门类 (section) -> the two-digit 大类 (division) range it owns.
GBT4754_SECTIONS = {
    "A": (1, 5), "B": (6, 12), "C": (13, 43), "D": (44, 46), "E": (47, 50), "F": (51, 52),
    "G": (53, 60), "H": (61, 62), "I": (63, 65), "J": (66, 69), "K": (70, 70), "L": (71, 72),
    "M": (73, 75), "N": (76, 79), "O": (80, 82), "P": (83, 83), "Q": (84, 85), "R": (86, 90),
    "S": (91, 96), "T": (97, 97),
}
_GBT4754_RE = re.compile(r"^([A-T])([0-9]{2,4})$")


def check_gbt4754(value: str) -> str | None:
    match = _GBT4754_RE.match(value)
    if not match:
        return "must be a GB/T 4754-2017 code: a section letter A-T and 2-4 digits, e.g. C3670"
    low, high = GBT4754_SECTIONS[match.group(1)]
    division = int(match.group(2)[:2])
    if not low <= division <= high:
        return f"division {match.group(2)[:2]} does not belong to section {match.group(1)} (GB/T 4754-2017)"
    return None


# GB/T 2260: the 34 province-level divisions, by their full names.
CN_PROVINCES = (
    "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省",
    "上海市", "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省",
    "湖南省", "广东省", "广西壮族自治区", "海南省", "重庆市", "四川省", "贵州省", "云南省",
    "西藏自治区", "陕西省", "甘肃省", "青海省", "宁夏回族自治区", "新疆维吾尔自治区",
    "台湾省", "香港特别行政区", "澳门特别行政区",
)
_PROVINCE_SET = frozenset(CN_PROVINCES)


def check_cn_province(value: str) -> str | None:
    if value not in _PROVINCE_SET:
        return "must be the full name of one of the 34 province-level divisions of GB/T 2260, e.g. 浙江省"
    return None


FORMATS = {
    "uscc": check_uscc,
    "gbt4754": check_gbt4754,
    "cn_province": check_cn_province,
}
