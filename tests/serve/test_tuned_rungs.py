"""Folders written by `rung tune` and `rung export onnx` served as rungs: no training data in
the config, no training at startup, and the answers the backends give outside the server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.export.onnx import export_onnx
from rung.models import registry
from rung.models.base import ClassifyRequest, run_sync
from rung.serve import create_app, parse_config
from tests.serve.harness import AppHarness

LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period.",
    "The company said it will cut 300 jobs as sales fell by a third.",
    "The annual general meeting will be held in Helsinki on Monday.",
]


@pytest.fixture(scope="module")
def served_tuned(
    tuned_classifier: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppHarness, Path]]:
    exported = tmp_path_factory.mktemp("served-onnx") / "fpb-onnx"
    export_onnx(tuned_classifier, exported)
    folder = tmp_path_factory.mktemp("served-tuned")
    config = parse_config(
        {
            "models": [
                {"id": f"encoder:{tuned_classifier}", "name": "fpb-tuned"},
                {"id": f"onnx:{exported}", "name": "fpb-edge", "options": {"threads": 1}},
            ],
            "auth": {"required": False},
        },
        base_dir=folder,
    )
    harness = AppHarness(create_app(config, ledger_url=f"sqlite:///{folder / 'usage.db'}"))
    harness.start()
    try:
        yield harness, exported
    finally:
        harness.stop()


def test_tuned_and_onnx_folders_classify_without_training(
    served_tuned: tuple[AppHarness, Path], tuned_classifier: Path
) -> None:
    served, _ = served_tuned
    answers = {}
    for name in ("fpb-tuned", "fpb-edge"):
        r = served.post("/v1/classify", json={"model": name, "input": TEXTS})
        assert r.status_code == 200, r.text
        answers[name] = r.json()["data"]
        for item in answers[name]:
            assert item["label"] in LABELS and 0 < item["confidence"] <= 1
    # the server answers as the backend does outside it, and no rung was trained at startup
    direct = registry.create(f"encoder:{tuned_classifier}")
    requests = [ClassifyRequest(text=t, labels=tuple(LABELS), messages=()) for t in TEXTS]
    expected = [p.label for p in run_sync(direct.classify(requests))]
    assert [item["label"] for item in answers["fpb-tuned"]] == expected
    agree = sum(
        a["label"] == b["label"]
        for a, b in zip(answers["fpb-tuned"], answers["fpb-edge"], strict=True)
    )
    assert agree >= 2, answers  # int8 may move one borderline text
    models = {m["id"]: m for m in served.request("GET", "/v1/models").json()["data"]}
    assert {"fpb-tuned", "fpb-edge"} <= set(models)


def test_a_tuned_folder_serves_embeddings(served_tuned: tuple[AppHarness, Path]) -> None:
    served, _ = served_tuned
    r = served.post("/v1/embeddings", json={"model": "fpb-tuned", "input": TEXTS[:2]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [len(d["embedding"]) for d in body["data"]] == [384, 384]
    assert body["usage"]["prompt_tokens"] > 10
    # the onnx rung makes no embeddings: a 400 that says so, and the server keeps serving
    r = served.post("/v1/embeddings", json={"model": "fpb-edge", "input": TEXTS[:1]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_cannot_embed"
    assert served.post(
        "/v1/classify", json={"model": "fpb-edge", "input": "Sales rose."}
    ).is_success


def test_a_config_that_lists_other_labels_is_refused(
    tuned_classifier: Path, tmp_path: Path
) -> None:
    from rung.errors import SpecError

    config = parse_config(
        {
            "models": [
                {
                    "id": f"encoder:{tuned_classifier}",
                    "name": "fpb-tuned",
                    "labels": ["bad", "good"],
                }
            ],
            "auth": {"required": False},
        },
        base_dir=tmp_path,
    )
    harness = AppHarness(create_app(config, ledger_url=f"sqlite:///{tmp_path / 'usage.db'}"))
    with pytest.raises(SpecError, match="trained on the labels negative, neutral, positive"):
        harness.start()
    harness.loop.call_soon_threadsafe(harness.loop.stop)
