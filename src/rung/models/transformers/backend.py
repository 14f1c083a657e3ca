"""``TransformersModel``: a Hugging Face causal LM run in-process with PyTorch, for models
llama.cpp does not run, or to run on a GPU through PyTorch."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

from rung.errors import ConfigurationError, MissingDependencyError, ModelLoadError, RungError
from rung.formats.gguf import read_header
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.profile import BackendProfile
from rung.models.transformers.files import folder_stats, stat, weight_files
from rung.models.transformers.hub import hub_snapshot
from rung.models.transformers.loading import (
    apply_adapter,
    load_failure,
    load_pretrained,
    load_tokenizer,
)
from rung.models.transformers.options import INSTALL, TUNE_INSTALL, TransformersOptions
from rung.models.transformers.profile import PROFILE
from rung.models.transformers.prompt import Prompt, render_prompt
from rung.models.transformers.scoring import Scorer, label_distribution
from rung.models.transformers.sources import ModelSource, check_source, resolve_source
from rung.models.transformers.threads import torch_threads

if TYPE_CHECKING:
    import torch

__all__ = ["TransformersModel"]


class TransformersModel(Model):
    """A Hugging Face causal LM run in-process with PyTorch."""

    provider: ClassVar[str] = "transformers"
    Options: ClassVar[type[BaseModel]] = TransformersOptions
    profile: ClassVar[BackendProfile] = PROFILE
    can_generate: ClassVar[bool] = True
    crash_hint: ClassVar[str] = (
        "check that torch matches this machine (pip install --force-reinstall torch==2.13.0 "
        "for the CPU build), or try options: {device: cpu}"
    )
    max_concurrency: int = 1

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._source: ModelSource | None = None
        self._quantization: str | None = None
        self._scorer: Scorer | None = None
        # One forward pass at a time: the model is shared and not thread-safe. A threading
        # lock, unlike an asyncio one, works whichever event loop calls us.
        self._lock = threading.Lock()

    @property
    def opts(self) -> TransformersOptions:
        assert isinstance(self.options, TransformersOptions)
        return self.options

    def source(self) -> ModelSource:
        if self._source is None:
            self._source = resolve_source(self.name)
        return self._source

    # --- check and load --------------------------------------------------------------------

    def check(self) -> None:
        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the transformers backend ({module})", INSTALL)
        src = self.source()
        if src.kind == "adapter":
            assert src.path is not None
            if src.merged is None:
                if importlib.util.find_spec("peft") is None:
                    raise MissingDependencyError(
                        f"loading the LoRA adapter at {src.path}", TUNE_INSTALL
                    )
                assert src.base is not None
                try:
                    check_source(src.base)
                except ModelLoadError as e:
                    raise ModelLoadError(
                        f"the adapter at {src.path} was trained on {src.base_name!r}, which "
                        f"cannot be loaded here ({e}); make that base available, or load a "
                        "folder with merged weights"
                    ) from e
        else:
            check_source(src)
        self._check_device()

    def _check_device(self) -> None:
        wanted = self.opts.device
        if not wanted.startswith("cuda"):
            return
        import torch

        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {wanted!r} is set but PyTorch sees no CUDA GPU; set device: cpu (or "
                "auto), or install a CUDA build of torch"
            )

    def _pick_device_dtype(self) -> tuple[str, torch.dtype]:
        import torch

        device = self.opts.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.opts.dtype != "auto":
            return device, getattr(torch, self.opts.dtype)
        if device.startswith("cuda"):
            return device, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return device, torch.float32

    def load(self) -> None:
        self.check()
        try:  # a broken install fails here, with the command that repairs it
            import torch  # noqa: F401
            import transformers
        except ImportError as e:
            raise MissingDependencyError(f"the transformers backend ({e})", INSTALL) from e
        # Its own progress bars would draw through rung's Rich display; rung reports loading.
        transformers.utils.logging.disable_progress_bar()
        device, dtype = self._pick_device_dtype()
        src = self.source()
        trust = self.opts.trust_remote_code
        weights = src
        if src.kind == "adapter":
            assert src.path is not None
            merged = src.merged
            if merged is not None:
                weights = ModelSource("folder", path=merged)
            else:
                assert src.base is not None
                weights = src.base
        tokenizer, model = load_pretrained(weights, dtype, trust)
        if src.kind == "adapter" and src.merged is None:
            assert src.path is not None
            # The adapter folder's tokenizer is the one training used (chat template, padding).
            tokenizer = load_tokenizer(src.path, trust) or tokenizer
            model = apply_adapter(model, src.path)
        try:
            model.to(device)
            model.eval()
        except RuntimeError as e:
            raise ModelLoadError(load_failure(src, e)) from e
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model, self._device = tokenizer, model, device
        self._scorer = Scorer(model, device)
        if weights.kind == "gguf":
            assert weights.path is not None
            qtype = read_header(weights.path).quantization
            if qtype:
                self._quantization = (
                    f"dequantized from {qtype} to {str(dtype).removeprefix('torch.')}"
                )

    def pretrained(self) -> tuple[Any, Any]:
        """The loaded Hugging Face model and tokenizer, for code that trains or inspects them
        (``rung tune-lm``). Calls through the backend take a lock; this does not."""
        return self._loaded()

    def close(self) -> None:
        on_gpu = self._device is not None and self._device.startswith("cuda")
        self._model = self._tokenizer = None
        self._scorer = None
        if on_gpu:
            import torch

            torch.cuda.empty_cache()

    # --- prompts ---------------------------------------------------------------------------

    def _loaded(self) -> tuple[Any, Any]:
        if self._model is None:
            raise RuntimeError(f"{self.model_id} is not loaded: call load() first")
        return self._model, self._tokenizer

    def _render(self, messages: Sequence[ChatMessage]) -> Prompt:
        _, tok = self._loaded()
        return render_prompt(tok, messages, self.model_id)

    # --- classify --------------------------------------------------------------------------

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return await asyncio.to_thread(self._classify_all, list(requests))

    def _classify_all(self, requests: list[ClassifyRequest]) -> list[Prediction]:
        import torch

        with self._lock, torch_threads(self.opts.threads), torch.inference_mode():
            return [self._classify_one(r) for r in requests]

    def _classify_one(self, request: ClassifyRequest) -> Prediction:
        prompt = self._render(request.messages)
        labels = list(dict.fromkeys(request.labels))
        label_ids = [prompt.continuation(lab) for lab in labels]
        assert self._scorer is not None
        logprobs = self._scorer.sequence_logprobs(prompt.ids, label_ids)
        scores = label_distribution(dict(zip(labels, logprobs, strict=True)))
        best = max(labels, key=lambda lab: scores[lab])
        return Prediction(
            label=best,
            scores=scores,
            confidence=scores[best],
            tokens_in=len(prompt.ids),
            tokens_out=len(label_ids[labels.index(best)]),
            raw=best,
        )

    # --- generate --------------------------------------------------------------------------

    async def generate(self, request: GenerateRequest) -> Generation:
        return await asyncio.to_thread(self._generate_sync, request)

    def _generate_sync(self, request: GenerateRequest) -> Generation:
        import torch

        model, tok = self._loaded()
        prompt_ids = self._render(request.messages).ids
        max_new = request.max_tokens
        if self.opts.max_tokens is not None:
            max_new = min(max_new, self.opts.max_tokens)
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": request.temperature}
            if request.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        if request.stop:
            sampling.update(stop_strings=list(request.stop), tokenizer=tok)
        prompt = torch.tensor([prompt_ids], device=self._device)
        with self._lock, torch_threads(self.opts.threads), torch.inference_mode():
            out = model.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=max_new,
                pad_token_id=tok.pad_token_id,
                **sampling,
            )
        new_ids = out[0, len(prompt_ids) :].tolist()
        text = tok.decode(new_ids, skip_special_tokens=True)
        finish = "length" if len(new_ids) >= max_new else "stop"
        for stop in request.stop:
            cut = text.find(stop)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Generation(
            text=text, tokens_in=len(prompt_ids), tokens_out=len(new_ids), finish_reason=finish
        )

    # --- facts -----------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        src = self.source()
        extra: dict[str, Any] = {"source": src.kind}
        weights, adapter_bytes = src, 0
        if src.kind == "adapter":
            assert src.path is not None
            extra.update(adapter=str(src.path), base=src.base_name, method="lora")
            merged = src.merged
            if merged is not None:
                extra["merged"] = str(merged)
                weights = ModelSource("folder", path=merged)
            elif src.base is not None:
                weights = src.base
                adapter_bytes = sum(p.stat().st_size for p in weight_files(src.path))
        folder = weights.path if weights.kind == "folder" else None
        if weights.kind == "hub":
            assert weights.repo is not None
            extra["repo"] = weights.repo
            folder = hub_snapshot(weights.repo)
        size: int | None = None
        if weights.kind == "gguf" and weights.path is not None and weights.path.is_file():
            size = weights.path.stat().st_size
        elif folder is not None and folder.is_dir():
            size = sum(p.stat().st_size for p in weight_files(folder)) or None
        if size is not None:
            size += adapter_bytes  # what must be on disk: the base and the adapter
        params = context = None
        quantization = self._quantization
        if self._model is not None:
            params = sum(p.numel() for p in self._model.parameters())
            config = self._model.config
            context = getattr(config, "max_position_embeddings", None)
            extra.update(device=self._device, dtype=str(self._model.dtype).removeprefix("torch."))
            extra["chat_template"] = bool(getattr(self._tokenizer, "chat_template", None))
            qconfig = getattr(config, "quantization_config", None)
            if quantization is None and qconfig is not None:
                method = (
                    qconfig.get("quant_method")
                    if isinstance(qconfig, dict)
                    else getattr(qconfig, "quant_method", None)
                )
                quantization = str(method) if method else None
        elif folder is not None and (folder / "config.json").is_file():
            try:
                config_json = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                context = config_json.get("max_position_embeddings")
            except (OSError, ValueError):
                context = None
        path = src.path if src.path is not None else folder
        return ModelInfo(
            params=params,
            file_size_bytes=size,
            path=str(path) if path is not None else None,
            quantization=quantization,
            context_length=context,
            extra=extra,
        )

    def fingerprint(self) -> str:
        try:
            src = self.source()
        except RungError:
            # An unresolvable name never produces answers to cache; check() reports it.
            return super().fingerprint()
        files: list[tuple[str, int, int]] = []
        weights = src
        if src.kind == "adapter":
            assert src.path is not None
            files.extend(folder_stats(src.path))
            merged = src.merged
            if merged is not None:
                weights = ModelSource("folder", path=merged)
            elif src.base is not None:
                weights = src.base
        folder = weights.path if weights.kind == "folder" else None
        revision = None
        if weights.kind == "hub":
            assert weights.repo is not None
            folder = hub_snapshot(weights.repo)
            revision = folder.name if folder is not None else None
        if weights.kind == "gguf" and weights.path is not None and weights.path.is_file():
            files.append(stat(weights.path))
        elif folder is not None and folder.is_dir():
            files.extend(folder_stats(folder))
        facts: dict[str, Any] = {
            "id": self.model_id,
            "source": src.kind,
            "path": str(src.path.resolve()) if src.path is not None else src.repo,
            "revision": revision,
            "files": files,
            "options": self.options.model_dump(mode="json"),
        }
        if weights is not src:
            facts["base"] = weights.label
        return stable_hash(facts)
