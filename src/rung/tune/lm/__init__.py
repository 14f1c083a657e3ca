"""LoRA fine-tuning of a small causal LM for generative tasks (summaries, answers, rewrites).

``tune_lora`` trains low-rank adapters (peft) on the attention projections of a causal LM, on
(prompt, completion) pairs, and writes a folder that is a rung: ``transformers:<folder>`` loads
the base, merges the adapter and generates (see rung.models.transformers).

How an example becomes a training sequence: the prompt is rendered exactly as the transformers
backend renders it when serving (the base's chat template, else its plain format), and the
completion is the text the template writes after it for an assistant turn (the answer and its
end-of-turn token). The loss is taken on the completion's tokens only (the prompt's labels are
-100), so the model learns to answer, not to reproduce the inputs. Examples longer than
``max_length`` tokens are cut in the last user message (the input text), never in the template's
markup; the completion keeps at least half the budget.

The folder (written beside ``out`` and renamed into place when complete):

- ``adapter_config.json`` + ``adapter_model.safetensors`` — the peft adapter (a few MB);
- tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``);
- ``merged/`` — the full merged weights (safetensors), only with ``merge=True``: the base is
  usually on disk already (the bundled GGUF, the hub cache), so the adapter alone is the
  default, a hundredth of the size; ``merged/`` makes the folder stand alone on a machine
  without the base, and loads faster;
- ``model-<type>.gguf`` — with ``gguf=``: the merged weights for llama.cpp (``rung.export.gguf``);
- ``rung.json`` (machine-readable card) and ``README.md`` (model card).

Determinism: one seed sets the adapters' initial weights, the dropout masks and the order of
the examples (torch's global RNG state is restored afterwards); the same data, options, seed and
thread count give the same losses and weights on the same machine.

Where each job lives:

- ``options`` — ``LoraOptions``, ``options_from``;
- ``data`` — the (prompt, completion) pairs from a file, the validation split;
- ``base`` — which base may be tuned, and how the card and peft name it;
- ``encoding`` — an example as token ids with the prompt masked out of the loss;
- ``train`` — the adapters, the training loop, early stopping, the losses before and after;
- ``folder`` — the adapter, tokenizer and merged weights written into the folder;
- ``card`` — ``rung.json`` and ``README.md``;
- ``run`` — ``tune_lora``: checks, training, folder, GGUF, in order;
- ``progress`` — the callbacks a display implements.
"""

from rung.tune.lm.card import render_readme
from rung.tune.lm.data import PairData, TrainExample, read_pairs, split_validation
from rung.tune.lm.options import DEFAULT_BASE, DEFAULT_TARGETS, LoraOptions, options_from
from rung.tune.lm.progress import LoraProgress, NullLoraProgress
from rung.tune.lm.run import LoraResult, tune_lora
from rung.tune.lm.train import Fitted, fit_lora, mean_loss

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_TARGETS",
    "Fitted",
    "LoraOptions",
    "LoraProgress",
    "LoraResult",
    "NullLoraProgress",
    "PairData",
    "TrainExample",
    "fit_lora",
    "mean_loss",
    "options_from",
    "read_pairs",
    "render_readme",
    "split_validation",
    "tune_lora",
]
