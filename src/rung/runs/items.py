"""The identity of a run's test items: one hash of their ids, texts and gold answers.

Two runs can be compared item by item only when they answered the same items; the hash says so
without keeping a copy of the data. It does not depend on the order of the items, so a run
whose rungs answered in another order still matches.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from rung.runs.record import PredictionRow

__all__ = ["items_sha256", "items_sha256_of_rows"]


def items_sha256(items: Iterable[tuple[str, str, str]]) -> str:
    """SHA-256 of ``(id, text, gold)`` items, as hex; repeated items count once."""
    digest = hashlib.sha256()
    for item in sorted(set(items)):
        # One JSON array per line: no text can pass for two fields or two items.
        digest.update(json.dumps(list(item), ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def items_sha256_of_rows(rows: Iterable[PredictionRow]) -> str:
    """The items hash of predictions.jsonl's rows: every rung answered the same items, so a run
    written before results.json held the hash gets the same one from its predictions."""
    return items_sha256((r.id, r.text, r.gold) for r in rows)
