from __future__ import annotations

from rung.report.markdown import find_disagreements, fmt_bytes, fmt_params


def test_disagreements_put_decisive_examples_first() -> None:
    a = [
        ("1", "t1", "pos", "pos"),
        ("2", "t2", "neg", "pos"),
        ("3", "t3", "neg", "neu"),
        ("4", "t4", "neu", "neu"),
    ]
    b = [
        ("1", "t1", "pos", "pos"),
        ("2", "t2", "neg", "neu"),
        ("3", "t3", "neg", "neg"),
        ("4", "t4", "neu", "pos"),
    ]
    found = find_disagreements(["small", "large"], [a, b])
    assert [d.id for d in found] == ["3", "4", "2"]  # 3 and 4: one rung right; 2: both wrong
    assert found[0].answers == {"small": "neu", "large": "neg"}


def test_sizes_read_like_people_write_them() -> None:
    assert fmt_params(22_713_216) == "23M"
    assert fmt_params(134_515_008) == "135M"
    assert fmt_params(7_240_000_000) == "7.2B"
    assert fmt_params(None) == "?"
    assert fmt_bytes(98_362_432) == "93.8 MB"
    assert fmt_bytes(None) == "?"
