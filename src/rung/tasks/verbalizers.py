"""The words a generative rung answers with for each label (its verbalizer).

A label is a name in the user's data (``negative``, ``card_arrival``, ``0`` mapped to
``negative``); a small model may know another word for it better. The classify task asks with
the verbalizer's words and maps the answer back to the label. Which verbalizer a rung gets is
chosen on the training split (see ``rung.compare.calibrate``), never on the test split; these
are the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["SYNONYMS", "Verbalizer", "candidate_verbalizers", "check_verbalizer"]

Verbalizer = dict[str, str]

#: other words for labels common in sentiment and polarity tasks
SYNONYMS: dict[str, str] = {
    "positive": "good",
    "negative": "bad",
    "neutral": "neutral",
    "mixed": "mixed",
}


def check_verbalizer(verbalizer: Mapping[str, str], labels: Sequence[str]) -> str | None:
    """What is wrong with a verbalizer for these labels, or None."""
    missing = [lab for lab in labels if lab not in verbalizer]
    if missing:
        return f"it gives no word for {', '.join(missing)}"
    extra = [lab for lab in verbalizer if lab not in labels]
    if extra:
        return f"it names labels that are not in the label set: {', '.join(extra)}"
    words = [verbalizer[lab].strip() for lab in labels]
    if any(not w for w in words):
        return "a word is empty"
    if len(set(words)) < len(words):
        return "two labels share a word"
    return None


def candidate_verbalizers(
    labels: Sequence[str], given: Sequence[Mapping[str, str]] = ()
) -> list[Verbalizer]:
    """The label names themselves first, then the verbalizers the spec gives, then the built-in
    ones that apply: labels written as words (``card_arrival`` → ``card arrival``) and, when
    every label has one, the synonyms above. Duplicates are dropped."""
    found: list[Verbalizer] = [{lab: lab for lab in labels}]
    found += [dict(v) for v in given]
    spaced = {lab: lab.replace("_", " ").replace("-", " ").strip() for lab in labels}
    found.append(spaced)
    # Capitalised words: SmolLM2-135M scored 0.74 with Negative/Neutral/Positive against 0.71
    # with the lower-case names on the demo's training examples.
    found.append({lab: word[:1].upper() + word[1:] for lab, word in spaced.items()})
    if all(lab.lower() in SYNONYMS for lab in labels):
        found.append({lab: SYNONYMS[lab.lower()] for lab in labels})
    unique: list[Verbalizer] = []
    for v in found:
        if check_verbalizer(v, labels) is None and v not in unique:
            unique.append(v)
    return unique
