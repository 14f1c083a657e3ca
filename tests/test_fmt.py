from __future__ import annotations

from rung import fmt


def test_sizes_read_like_people_write_them() -> None:
    assert fmt.params(22_713_216) == "23M"
    assert fmt.params(134_515_008) == "135M"
    assert fmt.params(7_240_000_000) == "7.2B"
    assert fmt.params(None) == "unknown size"
    assert fmt.params(None, "?") == "?"
    assert fmt.bytes_(98_362_432) == "93.8 MB"
    assert fmt.bytes_(-2048) == "-2 KB"
    assert fmt.bytes_(None) == "unknown"
    assert fmt.bytes_(None, "?") == "?"


def test_money_and_shares_keep_what_matters() -> None:
    assert fmt.usd(0.0014804) == "$0.0015"
    assert fmt.usd(1.004) == "$1.00"
    assert fmt.usd(None) == "unknown"
    assert fmt.pct(0.999) == "99.9%" and fmt.pct(0.5) == "50%"
    assert fmt.points(0.01) == "1.0 point" and fmt.points(-0.17) == "17.0 points"
