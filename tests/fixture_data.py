"""Test data sections that several test modules read: the French → English fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def fr_en_data() -> dict[str, Any]:
    """The data: section of a task on tests/fixtures/translate/fr_en.jsonl."""
    return {
        "path": str(FIXTURES / "translate" / "fr_en.jsonl"),
        "text": "source",
        "references": ["target"],
    }


def fr_en_translate() -> dict[str, Any]:
    """The fixture as a translate task's data and languages (splits and prompt left out)."""
    return {"type": "translate", "data": fr_en_data(), "source": "French", "target": "English"}
