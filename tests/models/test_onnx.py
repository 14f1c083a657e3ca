"""The onnx rung: an exported classifier run with ONNX Runtime and tokenizers only, through
rung's registry, its micro-batching runtime, and its errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rung.errors import ConfigurationError, DataError, ModelLoadError, ModelNotFoundError
from rung.export.onnx import export_onnx
from rung.models import registry
from rung.models.base import ClassifyRequest, Prediction, run_sync
from rung.models.runtime import BatchPolicy, ModelRuntime
from rung.tasks.data import read_examples

LABELS = ("negative", "neutral", "positive")


@pytest.fixture(scope="module")
def exported(tuned_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx-rung") / "fpb-onnx"
    export_onnx(tuned_classifier, out)
    return out


@pytest.fixture(scope="module")
def texts(fpb_path: Path) -> list[str]:
    return [ex.text for ex in read_examples(fpb_path)[500:560]]


def _requests(texts: list[str], labels: tuple[str, ...] = LABELS) -> list[ClassifyRequest]:
    return [ClassifyRequest(text=t, labels=labels, messages=()) for t in texts]


def test_onnx_rung_agrees_with_the_pytorch_rung(
    exported: Path, tuned_classifier: Path, texts: list[str]
) -> None:
    onnx = registry.create(f"onnx:{exported}", {"threads": 1, "batch_size": 8})
    assert not onnx.needs_training
    onnx.check()
    onnx.load()
    onnx.fit([], [], list(LABELS))  # only checks the labels
    fp32 = registry.create(f"onnx:{exported}", {"file": "model.onnx", "threads": 1})
    torch_rung = registry.create(f"encoder:{tuned_classifier}", {})
    torch_rung.load()
    got = run_sync(onnx.classify(_requests(texts)))
    exact = run_sync(fp32.classify(_requests(texts)))  # loads on first use
    ref = run_sync(torch_rung.classify(_requests(texts)))
    assert len(got) == len(texts)
    for p in got:
        assert p.label in LABELS
        assert set(p.scores) == set(LABELS)
        assert abs(sum(p.scores.values()) - 1) < 1e-9
        assert p.confidence == p.scores[p.label] == max(p.scores.values())
        assert 2 < p.tokens_in <= 48  # the card's max_seq_length truncates
    # fp32 matches PyTorch's probabilities and token counts; int8 keeps nearly every label
    for a, b in zip(exact, ref, strict=True):
        assert a.label == b.label and a.tokens_in == b.tokens_in
        assert max(abs(a.scores[k] - b.scores[k]) for k in LABELS) < 1e-4
    agree = sum(a.label == b.label for a, b in zip(got, ref, strict=True)) / len(texts)
    assert agree >= 0.95, agree

    info = onnx.info()
    assert info.quantization == "int8" and info.context_length == 48
    assert info.path is not None and info.path.endswith("model_int8.onnx")
    assert info.file_size_bytes == (exported / "model_int8.onnx").stat().st_size
    assert fp32.info().quantization == "fp32"
    assert onnx.fingerprint() != fp32.fingerprint()
    # the folder named as an encoder rung says which backend runs it
    with pytest.raises(ModelLoadError, match=f"onnx:{exported}"):
        registry.create(f"encoder:{exported}", {}).load()
    assert (
        onnx.fingerprint()
        == registry.create(f"onnx:{exported}", {"threads": 1, "batch_size": 8}).fingerprint()
    )


def test_the_runtime_gathers_concurrent_requests_into_batches(
    exported: Path, texts: list[str]
) -> None:
    model = registry.create(f"onnx:{exported}", {"file": "model.onnx", "batch_size": 16})
    assert BatchPolicy.for_model(model).max_batch == 16
    model.load()
    alone = [run_sync(model.classify([r]))[0] for r in _requests(texts[:40])]

    async def concurrently() -> tuple[list[Prediction], int]:
        async with ModelRuntime(model) as runtime:
            predictions = await runtime.classify_many(_requests(texts[:40]))
            return predictions, runtime.batches

    batched, batches = asyncio.run(concurrently())
    assert batches < 40  # micro-batched, not one call per request
    for a, b in zip(batched, alone, strict=True):
        assert a.label == b.label and a.tokens_in == b.tokens_in
        # padding to a longer text of the batch changes nothing but float rounding
        assert max(abs(a.scores[k] - b.scores[k]) for k in LABELS) < 1e-5


def test_labels_must_match_and_folders_are_checked(exported: Path, tmp_path: Path) -> None:
    onnx = registry.create(f"onnx:{exported}", {})
    with pytest.raises(DataError, match=r"tuned on the labels negative, neutral, positive.*ham"):
        onnx.fit([], [], ["spam", "ham"])
    with pytest.raises(DataError, match="spam"):
        run_sync(onnx.classify(_requests(["x"], ("spam", "ham"))))
    with pytest.raises(ModelNotFoundError, match="not found"):
        registry.create(f"onnx:{tmp_path / 'missing'}", {}).check()
    with pytest.raises(ModelNotFoundError, match=r"model\.onnx, model_int8\.onnx"):
        registry.create(f"onnx:{exported}", {"file": "other.onnx"}).check()

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no tokenizer\.json"):
        registry.create(f"onnx:{copy}", {}).check()
    (copy / "rung.json").unlink()
    with pytest.raises(ModelLoadError, match=r"no rung\.json.*rung export onnx"):
        registry.create(f"onnx:{copy}", {}).check()
    (copy / "rung.json").write_text(json.dumps({"labels": ["only"]}), encoding="utf-8")
    with pytest.raises(ModelLoadError, match="lists no labels"):
        registry.create(f"onnx:{copy}", {}).check()
    (copy / "rung.json").write_text(json.dumps({"labels": list(LABELS)}), encoding="utf-8")
    for graph in copy.glob("*.onnx"):
        graph.unlink()
    with pytest.raises(ModelLoadError, match="rung export onnx"):
        registry.create(f"onnx:{copy}", {}).check()

    with pytest.raises(ConfigurationError, match="512 positions"):
        registry.create(f"onnx:{exported}", {"max_seq_length": 1024}).check()
    with pytest.raises(ConfigurationError, match="NoSuchExecutionProvider"):
        registry.create(f"onnx:{exported}", {"providers": ["NoSuchExecutionProvider"]}).load()


def test_classifying_imports_neither_torch_nor_transformers(exported: Path) -> None:
    code = f"""
import sys
from rung.models import registry
from rung.models.base import ClassifyRequest, run_sync
m = registry.create("onnx:{exported}", {{"threads": 1}})
m.check()
m.load()
[p] = run_sync(m.classify([ClassifyRequest("Sales rose 20%.", ("negative", "neutral", "positive"), ())]))
m.info()
print(p.label, "torch" in sys.modules, "transformers" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    label, torch_loaded, transformers_loaded = out.stdout.split()
    assert label in LABELS
    assert (torch_loaded, transformers_loaded) == ("False", "False")
