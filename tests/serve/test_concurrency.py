"""Local models under concurrent requests: llama.cpp answers them one at a time without
mixing them up; the encoder turns them into batches."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import fpb_texts
from tests.serve.harness import AppHarness


async def _classify_all(
    client: httpx.AsyncClient, key: str, model: str, texts: list[str]
) -> list[httpx.Response]:
    return list(
        await asyncio.gather(
            *(
                client.post(
                    "/v1/classify",
                    json={"model": model, "input": t},
                    headers={"Authorization": f"Bearer {key}"},
                )
                for t in texts
            )
        )
    )


def test_llamacpp_rung_under_8_concurrent_requests(
    served: AppHarness, key: str, fpb_path: Path
) -> None:
    texts = fpb_texts(fpb_path, 8, skip=200)
    sequential = [
        served.post("/v1/classify", key, json={"model": "smollm2", "input": t}).json()["data"][0]
        for t in texts
    ]
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)  # a different order: the KV-cache reuse must not leak
    responses = served.run(_classify_all(served.client, key, "smollm2", [texts[i] for i in order]))
    assert [r.status_code for r in responses] == [200] * len(texts)
    for i, r in zip(order, responses, strict=True):
        item = r.json()["data"][0]
        assert item["label"] == sequential[i]["label"]
        assert item["scores"] == pytest.approx(sequential[i]["scores"], abs=1e-4)


def test_encoder_rung_batches_16_concurrent_requests(
    served: AppHarness, key: str, fpb_path: Path
) -> None:
    runtime = served.state.models["sentiment"].runtime
    assert runtime is not None
    batches, requests = runtime.batches, runtime.batched_requests
    texts = fpb_texts(fpb_path, 16, skip=300)
    responses = served.run(_classify_all(served.client, key, "sentiment", texts))
    assert [r.status_code for r in responses] == [200] * 16
    assert runtime.batched_requests - requests == 16
    formed = runtime.batches - batches
    assert formed <= 4, f"16 concurrent requests went out in {formed} batches"
    # and each answer is the one the text gets on its own
    alone = served.post("/v1/classify", key, json={"model": "sentiment", "input": texts[5]})
    assert responses[5].json()["data"][0]["scores"] == pytest.approx(
        alone.json()["data"][0]["scores"], abs=1e-4
    )
