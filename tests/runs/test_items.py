"""The items hash: the same items in any order hash the same; any change to an id, a text or a
gold answer changes it; predictions.jsonl gives the hash results.json holds."""

from __future__ import annotations

from rung.runs.items import items_sha256, items_sha256_of_rows
from tests.runs.records import prediction

ITEMS = [("1", "profit rose", "positive"), ("2", "sales fell", "negative")]


def test_order_and_repeats_do_not_matter() -> None:
    assert items_sha256(ITEMS) == items_sha256([*reversed(ITEMS), ITEMS[0]])


def test_each_field_counts() -> None:
    base = items_sha256(ITEMS)
    assert items_sha256([("3", "profit rose", "positive"), ITEMS[1]]) != base
    assert items_sha256([("1", "profit rose!", "positive"), ITEMS[1]]) != base
    assert items_sha256([("1", "profit rose", "neutral"), ITEMS[1]]) != base
    # No text can pass for two fields.
    assert items_sha256([("1 a", "b", "c")]) != items_sha256([("1", "a b", "c")])


def test_rows_of_every_rung_give_the_items_hash() -> None:
    rows = [prediction(rung, i, gold="positive") for rung in ("a", "b") for i in (1, 2)]
    assert items_sha256_of_rows(rows) == items_sha256(
        [("1", "text 1", "positive"), ("2", "text 2", "positive")]
    )
