"""runs: what a run is. The compare spec it ran (``spec``), the typed record of what it
measured (``record``: results.json and predictions.jsonl, with each task's ``quality``), and
the folder that holds them (``RunFolder``), the one place a run is read or written.

Below the middle floor: ``compare`` writes runs, ``advise``, ``route``, ``report`` and
``serve`` read them, and none of them imports another for it.
"""

from rung.runs.folder import RunFolder
from rung.runs.quality import (
    QUALITY_MODELS,
    ClassifyQuality,
    Metric,
    Quality,
    TaskQuality,
    TextQuality,
    quality_model,
)
from rung.runs.record import (
    RECORD_VERSION,
    BaselineRow,
    CounterfactualRow,
    FailedRung,
    Latency,
    LoadLevel,
    MemoryMb,
    PredictionRow,
    RungCalibration,
    RungCost,
    RungResult,
    RunResults,
    TaskSummary,
    TimeToFirstToken,
    Tokens,
)
from rung.runs.spec import CompareSpec, LoadSpec, MeasureSpec, ModelRef, load_spec, parse_spec

__all__ = [
    "QUALITY_MODELS",
    "RECORD_VERSION",
    "BaselineRow",
    "ClassifyQuality",
    "CompareSpec",
    "CounterfactualRow",
    "FailedRung",
    "Latency",
    "LoadLevel",
    "LoadSpec",
    "MeasureSpec",
    "MemoryMb",
    "Metric",
    "ModelRef",
    "PredictionRow",
    "Quality",
    "RunFolder",
    "RunResults",
    "RungCalibration",
    "RungCost",
    "RungResult",
    "TaskQuality",
    "TaskSummary",
    "TextQuality",
    "TimeToFirstToken",
    "Tokens",
    "load_spec",
    "parse_spec",
    "quality_model",
]
