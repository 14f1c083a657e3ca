from __future__ import annotations

from rung.report.markdown import find_disagreements


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
