"""export_onnx on real fine-tuned MiniLM classifiers (both heads rung tune writes: the default
linear head over mean pooling, and a transformers sequence classifier): an exact fp32 graph, a
faithful int8 graph, a setfit folder in one graph, and a folder that appears only complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from rung.errors import ModelLoadError, ModelNotFoundError, RunError
from rung.export.onnx import export_onnx
from rung.models.bundled import minilm_l6_dir
from rung.tasks.data import read_examples

LABELS = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module", params=["tuned_classifier", "tuned_sequence_classifier"])
def tuned(request: pytest.FixtureRequest) -> Path:
    folder: Path = request.getfixturevalue(request.param)
    return folder


@pytest.fixture(scope="module")
def exported(tuned: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "fpb-onnx"
    export_onnx(tuned, out)
    return out


@pytest.fixture(scope="module")
def check_texts(fpb_path: Path) -> list[str]:
    # rows the fixture's 240 training sentences are unlikely to hold all of; agreement, not
    # accuracy, is measured
    return [ex.text for ex in read_examples(fpb_path)[1000:1100]]


def _torch_logits(folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if (folder / "head.safetensors").is_file():  # sentence embedding times the linear head
        from safetensors.numpy import load_file
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(folder), device="cpu")
        st.max_seq_length = max_length
        head = load_file(str(folder / "head.safetensors"))
        return np.asarray(st.encode(texts) @ head["coef"].T + head["intercept"])
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.numpy()


def _onnx_logits(path: Path, folder: Path, texts: list[str], max_length: int) -> np.ndarray:
    """ONNX Runtime fed by the Hugging Face tokenizer: a check independent of the rung's own
    tokenizer path (tests/models/test_onnx.py runs that one)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["logits"], {n: enc[n].astype(np.int64) for n in names})[0]


def test_export_writes_exact_fp32_and_faithful_int8(
    exported: Path, tuned: Path, check_texts: list[str]
) -> None:
    assert sorted(p.name for p in exported.iterdir()) == [
        "README.md",
        "config.json",
        "model.onnx",
        "model_int8.onnx",
        "rung.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    card = json.loads((exported / "rung.json").read_text(encoding="utf-8"))
    source = json.loads((tuned / "rung.json").read_text(encoding="utf-8"))
    assert (card["format"], card["kind"], card["method"]) == (1, "classifier", "onnx")
    assert card["labels"] == LABELS == source["labels"]
    assert card["max_seq_length"] == source["max_seq_length"] == 48
    assert card["source"]["card"]["base"] == source["base"] == card["base"]
    assert card["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert card["default_file"] == "model_int8.onnx" and card["opset"] == 17
    files = card["files"]
    assert files["model.onnx"]["bytes"] == (exported / "model.onnx").stat().st_size
    # int8 weights: about a quarter of the fp32 file
    assert files["model_int8.onnx"]["bytes"] < 0.35 * files["model.onnx"]["bytes"]
    assert files["model.onnx"]["max_abs_logit_difference"] < 1e-4
    assert 0 < files["model_int8.onnx"]["max_abs_logit_difference"] < 1.0
    assert card["check"]["same_token_counts"] is True
    config = json.loads((exported / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}

    reference = _torch_logits(tuned, check_texts, 48)
    fp32 = _onnx_logits(exported / "model.onnx", tuned, check_texts, 48)
    int8 = _onnx_logits(exported / "model_int8.onnx", tuned, check_texts, 48)
    assert np.abs(fp32 - reference).max() < 1e-4
    agree = (int8.argmax(1) == reference.argmax(1)).mean()
    assert agree >= 0.95, agree


@pytest.fixture(scope="module")
def setfit_folder(fpb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in the setfit format (sentence-transformers model + logistic head +
    rung.json), its head trained in seconds on the frozen bundled MiniLM."""
    from safetensors.numpy import save_file
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("setfit") / "fpb-setfit"
    shutil.copytree(minilm_l6_dir(), folder)
    examples = read_examples(fpb_path)[::20][:110]
    st = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    features = st.encode([ex.text for ex in examples], normalize_embeddings=True)
    head = LogisticRegression(C=10.0, max_iter=1000).fit(features, [ex.label for ex in examples])
    assert list(head.classes_) == LABELS
    save_file(
        {"coef": head.coef_.astype(np.float64), "intercept": head.intercept_.astype(np.float64)},
        str(folder / "head.safetensors"),
    )
    card = {
        "format": 1,
        "kind": "classifier",
        "method": "setfit",
        "base": "encoder:minilm-l6",
        "labels": LABELS,
        "max_seq_length": 64,
        "normalize": True,
    }
    (folder / "rung.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def test_a_setfit_folder_exports_to_one_graph_with_its_head(
    setfit_folder: Path, tmp_path: Path, check_texts: list[str]
) -> None:
    from rung.models import registry
    from rung.models.base import ClassifyRequest, run_sync

    out = tmp_path / "setfit-onnx"
    result = export_onnx(setfit_folder, out)
    assert result.card["source"]["method"] == "setfit"
    assert result.card["max_seq_length"] == 64
    fp32, int8 = result.graphs
    assert fp32.max_abs_logit_difference < 1e-4 and int8.precision == "int8"

    requests = [ClassifyRequest(t, tuple(LABELS), ()) for t in check_texts]
    torch_rung = registry.create(f"encoder:{setfit_folder}", {})
    exact = registry.create(f"onnx:{out}", {"file": "model.onnx", "threads": 1})
    quantized = registry.create(f"onnx:{out}", {"threads": 1})
    ref, got, got8 = (run_sync(m.classify(requests)) for m in (torch_rung, exact, quantized))
    for a, b in zip(got, ref, strict=True):
        assert a.label == b.label and a.tokens_in == b.tokens_in
        assert max(abs(a.scores[k] - b.scores[k]) for k in LABELS) < 1e-4
    agree = sum(a.label == b.label for a, b in zip(got8, ref, strict=True)) / len(ref)
    assert agree >= 0.95, agree


def test_refusals_leave_nothing_behind(
    tuned_classifier: Path, exported: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="not found"):
        export_onnx(tmp_path / "missing", tmp_path / "a")
    with pytest.raises(ModelLoadError, match=r"no classifier head.*rung tune"):
        export_onnx(minilm_l6_dir(), tmp_path / "b")
    with pytest.raises(RunError, match=r"already holds a model.*--force"):
        export_onnx(tuned_classifier, exported)
    with pytest.raises(RunError, match="is the source folder"):
        export_onnx(tuned_classifier, tuned_classifier, force=True)

    broken = tmp_path / "broken"
    shutil.copytree(tuned_classifier, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelLoadError, match="cannot load the classifier"):
        export_onnx(broken, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken"]


def test_a_failed_export_keeps_the_old_folder(
    tuned_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rung"
    export_onnx(tuned_classifier, out, quantize="none")
    before = sorted(p.name for p in out.iterdir())
    assert "model_int8.onnx" not in before

    import onnxruntime.quantization

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    # fault injection: the quantizer fails after the fp32 graph is written
    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", disk_full)
    with pytest.raises(OSError, match="No space left"):
        export_onnx(tuned_classifier, out, force=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["rung"]  # no partial folder beside it

    monkeypatch.undo()
    result = export_onnx(tuned_classifier, out, force=True)
    assert (out / "model_int8.onnx").is_file() and result.default_file == "model_int8.onnx"
    assert [p.name for p in tmp_path.iterdir()] == ["rung"]
