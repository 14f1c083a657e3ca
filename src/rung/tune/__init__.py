"""tune: fine-tune a small encoder classifier on labelled data, into a folder that is a rung
(``encoder:<folder>``)."""

from rung.tune.classifier import TuneOptions, TuneResult, tune_classifier
from rung.tune.progress import NullProgress, TuneProgress

__all__ = ["NullProgress", "TuneOptions", "TuneProgress", "TuneResult", "tune_classifier"]
