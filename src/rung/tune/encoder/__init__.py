"""Fine-tuning an encoder classifier on labelled texts: ``tune_classifier``.

Two methods share the checks, the validation split, early stopping, the evaluation and the
folder writing:

- ``full`` (``full``, ``heads``): the encoder with a new classification head, every weight
  trained with cross-entropy (AdamW, linear warmup then decay, gradient clipping) in a plain
  torch loop. The head reads the mean of the token states by default (``pooling: mean``: how
  sentence encoders such as all-MiniLM-L6-v2 were trained, 1-3 points better than the first
  token on the financial phrasebank) and the folder is a sentence-transformers model plus
  ``head.safetensors``; ``pooling: cls`` writes a transformers ``*ForSequenceClassification``
  folder instead;
- ``setfit`` (``setfit``): contrastive fine-tuning of a sentence-transformers body on pairs of
  examples, then a logistic-regression head; meant for 8-64 examples per class.

Runs are deterministic on one machine: the seed fixes the head's initialisation, dropout and the
order of the batches (one seeded generator, no sorting), so the same data, seed and settings
give the same figures. The validation split is drawn stratified from the training texts when
none is given; no test text is ever trained or validated on. The best weights (by validation
macro-F1 or accuracy) are kept in a checkpoint inside the run's hidden staging folder and
restored at the end.

Where each job lives:

- ``options`` — ``TuneOptions``, ``options_from``;
- ``splits`` — the label set and the splits, checked; the stratified validation split;
- ``base`` — which base may be tuned, and whether the options fit it;
- ``run`` — ``tune_classifier``: checks, training, scores, folder, in order;
- ``method`` — what both methods share: ``Trained``, the optimizer and schedule;
- ``full`` and ``heads`` — the full fine-tune's loop, and its heads and pooling;
- ``setfit`` — pairs, the contrastive loop, the logistic head;
- ``evaluation`` — the validation score, early stopping, the final figures;
- ``card`` — ``rung.json`` and ``README.md``;
- ``progress`` — the callbacks a display implements.
"""

from rung.tune.encoder.base import check_base, resolve_base
from rung.tune.encoder.options import INSTALL, TuneOptions, options_from
from rung.tune.encoder.progress import NullProgress, TuneProgress
from rung.tune.encoder.run import TuneResult, tune_classifier

__all__ = [
    "INSTALL",
    "NullProgress",
    "TuneOptions",
    "TuneProgress",
    "TuneResult",
    "check_base",
    "options_from",
    "resolve_base",
    "tune_classifier",
]
