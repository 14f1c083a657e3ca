"""One server for the whole folder: the bundled encoder (trained at startup on 200 financial
phrasebank sentences), smollm2, and a cascade of the two, loaded once and reached both
in-process and over a real socket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from rung.models import registry
from rung.serve import create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from tests.runs.records import run_results, rung_result
from tests.serve.harness import AppHarness

LABELS = ["negative", "neutral", "positive"]
INSTRUCTIONS = (
    "You label the sentiment of sentences from financial news, from the point of view of an "
    "investor in the company. Answer with one word: {labels}."
)
#: USD per million tokens charged for smollm2, high so that budgets run out in a request
SMOL_PRICE = {"input_per_mtok": 1000.0, "output_per_mtok": 1000.0}
#: one thread: on a machine shared with other work, llama.cpp's threads wait on each other at
#: every layer when one of them is descheduled (see tests/models/test_llamacpp.py)
LLAMA_OPTIONS = {"n_threads": 1}


@contextmanager
def cascade_backend() -> Iterator[None]:
    """Until the package's metadata declares the cascade backend (pyproject's rung.backends),
    add it as that entry point would, for as long as this folder's tests run."""
    eps = registry._entry_points()
    if "cascade" in eps:
        yield
        return
    eps["cascade"] = EntryPoint(
        name="cascade", value="rung.route.cascade:CascadeModel", group=registry.GROUP
    )
    try:
        yield
    finally:
        eps.pop("cascade", None)


def fpb_texts(fpb_path: Path, n: int, skip: int = 1000) -> list[str]:
    """n sentences from the far end of the file (training draws from all of it; these are
    just inputs)."""
    lines = fpb_path.read_bytes().decode("latin-1").splitlines()
    return [line.rsplit("@", 1)[0].strip() for line in lines[skip : skip + n]]


def serve_config(fpb_path: Path, runs_dir: Path, **overrides: Any) -> dict[str, Any]:
    train = {"path": str(fpb_path), "labels": LABELS, "train_size": 200, "seed": 0}
    config: dict[str, Any] = {
        "models": [
            {"id": "encoder:minilm-l6", "name": "sentiment", "train": train},
            {
                "id": "llamacpp:smollm2-135m-instruct",
                "name": "smollm2",
                "options": LLAMA_OPTIONS,
                "labels": LABELS,
                "prompt": {"instructions": INSTRUCTIONS},
                "price": SMOL_PRICE,
            },
        ],
        "cascades": {
            "sentiment": {
                "rungs": [
                    {"model": "encoder:minilm-l6", "threshold": 0.9, "cost_usd_per_1k": 0.01},
                    {
                        "model": "llamacpp:smollm2-135m-instruct",
                        "options": LLAMA_OPTIONS,
                        "cost_usd_per_1k": 0.1,
                    },
                ],
                "labels": LABELS,
                "train": train,
                "prompt": {"instructions": INSTRUCTIONS},
            }
        },
        "auth": {"required": True},
        "limits": {"max_input_chars": 2000, "max_batch": 16, "max_body_bytes": 65536},
        "runs_dir": str(runs_dir),
    }
    config.update(overrides)
    return config


def write_run(runs_dir: Path) -> None:
    """A compare run folder as `rung compare` leaves it (GraphQL reads its results.json)."""
    folder = runs_dir / "fpb"
    folder.mkdir(parents=True, exist_ok=True)
    results = run_results(
        [
            rung_result(
                "encoder:minilm-l6",
                0.9,
                (0.8, 0.96),
                model="encoder:minilm-l6",
                p50=4.2,
                cost_usd_per_1k=0.001,
            )
        ],
        name="fpb sentiment",
        labels=LABELS,
        n_test=50,
    )
    (folder / "results.json").write_text(results.to_text(), encoding="utf-8")


@pytest.fixture(scope="package")
def ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'usage.db'}"


@pytest.fixture(scope="package")
def served(
    tmp_path_factory: pytest.TempPathFactory, shared_data: Path, ledger_url: str
) -> Iterator[AppHarness]:
    fpb = shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt"
    runs_dir = tmp_path_factory.mktemp("runs")
    write_run(runs_dir)
    with cascade_backend(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_CACHE_DIR", str(tmp_path_factory.mktemp("serve-cache")))
        config = parse_config(serve_config(fpb, runs_dir), base_dir=runs_dir)
        harness = AppHarness(create_app(config, ledger_url=ledger_url)).start(http=True)
        try:
            yield harness
        finally:
            harness.stop()


@pytest.fixture(scope="package")
def ledger(ledger_url: str, served: AppHarness) -> Iterator[Ledger]:
    """The server's ledger as `rung keys` opens it: a connection of its own."""
    db = Ledger(ledger_url)
    yield db
    db.close()


@pytest.fixture(scope="package")
def key(ledger: Ledger) -> str:
    return create_key(ledger, "tests")[1]
