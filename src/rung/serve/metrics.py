"""Prometheus metrics of one server, in a registry of its own (so several apps can live in one
process, as they do in tests).

- ``rung_requests_total{model,endpoint,status}`` and
  ``rung_request_duration_seconds{model,endpoint}``: every request, the rejected ones included;
- ``rung_tokens_total{model,direction}``, ``rung_cost_usd_total{model}``: what was served;
- ``rung_answers_total{model,rung}``: classifications by the rung that gave them (the share a
  cascade's small rung answers);
- ``rung_queue_depth{model}``: requests waiting for or being served by each model;
- ``rung_batches_total{model}``, ``rung_batched_requests_total{model}``: the micro-batches
  the model runtimes formed (their ratio is the mean batch size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from rung.serve.rungs import ServedModel

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Runtimes(Collector):
    def __init__(self, models: Callable[[], Mapping[str, ServedModel]]) -> None:
        self.models = models

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "rung_queue_depth", "Requests waiting for or being served by a model.", labels=["model"]
        )
        batches = CounterMetricFamily(
            "rung_batches", "Batches the model's runtime sent to it.", labels=["model"]
        )
        batched = CounterMetricFamily(
            "rung_batched_requests", "Requests in those batches.", labels=["model"]
        )
        for name, served in self.models().items():
            depth.add_metric([name], served.in_flight)
            if served.runtime is not None:  # a cascade batches per rung, inside
                batches.add_metric([name], served.runtime.batches)
                batched.add_metric([name], served.runtime.batched_requests)
        yield depth
        yield batches
        yield batched


class Metrics:
    def __init__(self, models: Callable[[], Mapping[str, ServedModel]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rung_requests",
            "Requests by model, endpoint and HTTP status.",
            ["model", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rung_request_duration_seconds",
            "Time from request to the end of the response.",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "rung_tokens",
            "Tokens read and written.",
            ["model", "direction"],
            registry=self.registry,
        )
        self.cost = Counter(
            "rung_cost_usd", "Cost charged to keys, in USD.", ["model"], registry=self.registry
        )
        self.answers = Counter(
            "rung_answers",
            "Classifications by the rung that answered.",
            ["model", "rung"],
            registry=self.registry,
        )
        self.registry.register(_Runtimes(models))

    def observe(
        self,
        model: str,
        endpoint: str,
        status: int,
        seconds: float,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
    ) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        self.latency.labels(model, endpoint).observe(seconds)
        if tokens_in:
            self.tokens.labels(model, "in").inc(tokens_in)
        if tokens_out:
            self.tokens.labels(model, "out").inc(tokens_out)
        if cost_usd:
            self.cost.labels(model).inc(cost_usd)

    def render(self) -> bytes:
        return generate_latest(self.registry)
