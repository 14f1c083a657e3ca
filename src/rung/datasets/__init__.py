"""Data that ships with rung, each folder with its license, and the demo's spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rung.runs.spec import CompareSpec, parse_spec

__all__ = ["FPB_ALLAGREE", "demo_spec"]

HERE = Path(__file__).resolve().parent
FPB_ALLAGREE = HERE / "financial_phrasebank" / "Sentences_AllAgree.txt"

DEMO_RUNGS = ["encoder:minilm-l6", "llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"]


def demo_spec(
    test_size: int = 150, environ: Mapping[str, str] | None = None
) -> tuple[CompareSpec, Path]:
    """The bundled ladder on the bundled financial sentiment data. An LLM rung joins when an
    OpenAI key or an OpenAI-compatible base URL is configured."""
    env = environ or {}
    models: list[object] = list(DEMO_RUNGS)
    if env.get("OPENAI_API_KEY") or env.get("RUNG_OPENAI_BASE_URL"):
        models.append({"id": "openai:" + env.get("RUNG_OPENAI_MODEL", "gpt-4o-mini")})
    spec = parse_spec(
        {
            "name": "rung demo: financial news sentiment (Financial PhraseBank, all-agree)",
            "task": {
                "type": "classify",
                "data": {"path": str(FPB_ALLAGREE)},
                "labels": ["negative", "neutral", "positive"],
                "train_size": 600,
                "test_size": test_size,
                "seed": 0,
                "prompt": {
                    # Zero-shot, the 135M-270M models answer nearly everything with one
                    # label; with four examples per label (and calibration, on by default)
                    # gemma-3-270m went from 0.71 with two to about 0.81-0.85.
                    "shots": 4,
                    "instructions": (
                        "You label the sentiment of sentences from financial news, from the point "
                        "of view of an investor in the company. Answer with one word: {labels}."
                    ),
                },
                # Four or two shots, chosen per rung on training examples with the words and
                # the calibration: SmolLM2-135M does better with fewer than Gemma-3-270M.
                "calibration": {"shots": [2]},
            },
            "models": models,
        },
        "demo spec",
    )
    return spec, HERE
