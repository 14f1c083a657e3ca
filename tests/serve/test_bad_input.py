"""Bad requests get a 4xx with a JSON error that names the problem, and the server keeps
serving: after each, a good request still succeeds."""

from __future__ import annotations

from typing import Any

import pytest

from tests.serve.harness import AppHarness

GOOD = {"model": "sentiment", "input": "Operating profit rose."}
JSON = {"Content-Type": "application/json"}


def _bad(served: AppHarness, key: str, path: str, **kwargs: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
    r = served.request("POST", path, headers=headers, **kwargs)
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"message", "type", "code"}
    assert body["error"]["message"]
    good = served.post("/v1/classify", key, json=GOOD)
    assert good.status_code == 200, good.text
    return {"status": r.status_code, **body["error"]}


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"model": "sentiment", "input": ', "malformed JSON at line 1"),
        (b"", "empty body"),
        (b"[1, 2]", "not an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_malformed_json_is_400(served: AppHarness, key: str, content: bytes, needle: str) -> None:
    error = _bad(served, key, "/v1/classify", content=content, headers=JSON)
    assert error["status"] == 400
    assert needle in error["message"]


def test_unknown_model_is_404_with_did_you_mean(served: AppHarness, key: str) -> None:
    error = _bad(served, key, "/v1/classify", json={"model": "sentimen", "input": "x"})
    assert error["status"] == 404
    assert error["code"] == "model_not_found"
    assert "did you mean 'sentiment'" in error["message"]
    error = _bad(
        served,
        key,
        "/v1/chat/completions",
        json={"model": "smollm3", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert error["status"] == 404
    assert "smollm2" in error["message"]


def test_over_long_input_is_413(served: AppHarness, key: str) -> None:
    error = _bad(served, key, "/v1/classify", json={"model": "sentiment", "input": "a" * 2001})
    assert error["status"] == 413
    assert error["code"] == "input_too_long"
    assert "2,001 characters" in error["message"]
    error = _bad(
        served,
        key,
        "/v1/chat/completions",
        json={"model": "smollm2", "messages": [{"role": "user", "content": "b" * 5000}]},
    )
    assert error["status"] == 413


def test_body_over_the_size_limit_is_413(served: AppHarness, key: str) -> None:
    error = _bad(served, key, "/v1/classify", json={"model": "sentiment", "input": "c" * 70_000})
    assert error["status"] == 413
    assert error["code"] == "body_too_large"


def test_wrong_content_type_is_415(served: AppHarness, key: str) -> None:
    error = _bad(
        served,
        key,
        "/v1/classify",
        content=b"model=sentiment",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error["status"] == 415
    assert "application/json" in error["message"]
    error = _bad(
        served,
        key,
        "/v1/classify",
        content=b'{"model": "sentiment"}',
        headers={"Content-Type": "text/plain"},
    )
    assert error["status"] == 415


def test_batch_too_large_is_413(served: AppHarness, key: str) -> None:
    error = _bad(served, key, "/v1/classify", json={"model": "sentiment", "input": ["x"] * 17})
    assert error["status"] == 413
    assert error["code"] == "batch_too_large"
    assert "17 texts" in error["message"]


def test_invalid_fields_are_400_naming_them(served: AppHarness, key: str) -> None:
    error = _bad(served, key, "/v1/classify", json={"model": "sentiment", "inputs": "x"})
    assert error["status"] == 400
    assert "'input'" in error["message"] and "'inputs'" in error["message"]
    error = _bad(served, key, "/v1/classify", json={"model": "sentiment", "input": []})
    assert error["status"] == 400
    error = _bad(
        served,
        key,
        "/v1/chat/completions",
        json={"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "n": 3},
    )
    assert error["status"] == 400
    assert "n=3 is not supported" in error["message"]
    error = _bad(
        served,
        key,
        "/v1/chat/completions",
        json={"model": "smollm2", "messages": [{"role": "robot", "content": "hi"}]},
    )
    assert error["status"] == 400
    assert error["param"] == "messages.0.role"


def test_unknown_endpoint_and_method_are_json(served: AppHarness, key: str) -> None:
    r = served.get("/v1/nothing", key)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = served.get("/v1/classify", key)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"
