"""The serve config: which rungs the server loads, who may call it, and where usage is logged.

A YAML file, loaded with ``yaml.safe_load`` and validated by pydantic models that forbid unknown
fields (``rung serve --schema`` prints the JSON schema). Paths are relative to the config
file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from rung.catalog.costs import TokenPrice
from rung.config import cache_dir
from rung.errors import SpecError, validation_message
from rung.tasks.classify import PromptSpec
from rung.tasks.data import DataFormat

__all__ = [
    "AskSpec",
    "AuthSpec",
    "CascadeEntry",
    "IndexEntry",
    "LedgerSpec",
    "LimitsSpec",
    "ModelEntry",
    "ServeConfig",
    "TrainSpec",
    "WebSpec",
    "default_ledger_url",
    "load_config",
    "parse_config",
]


def default_ledger_url() -> str:
    """SQLite under the cache folder, created on first use."""
    return f"sqlite:///{cache_dir() / 'serve' / 'ledger.db'}"


class TrainSpec(BaseModel):
    """Labelled examples a rung that needs training (the frozen encoder's logistic head) is
    trained on at startup: seconds for a few hundred examples. A folder written by ``rung tune``
    (``encoder:<folder>``, ``onnx:<folder>``) carries its trained head and needs none."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File of labelled examples, relative to the config file.")
    format: DataFormat | None = Field(
        default=None, description="csv, tsv, jsonl or at. Default: from the extension."
    )
    text: str = Field(default="text", description="Column or JSON field holding the text.")
    label: str = Field(default="label", description="Column or JSON field holding the label.")
    label_map: dict[str, str] = Field(
        default_factory=dict, description="Rename labels as read, e.g. {'0': negative}."
    )
    labels: list[str] | None = Field(
        default=None, description="The label set. Default: every label in the file, sorted."
    )
    train_size: int | float | None = Field(
        default=200,
        description="Examples to train on (count, or fraction of the file); stratified by label.",
    )
    seed: int = Field(default=0, description="Seed of the stratified sample.")

    @field_validator("label_map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


class _Served(BaseModel):
    """What every served model, plain or cascade, may set."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] | None = Field(
        default=None,
        description="Label set for /v1/classify. Default: train.labels, or the labels in the "
        "training file. A request may send its own labels to rungs that do not train.",
    )
    prompt: PromptSpec = Field(
        default_factory=PromptSpec,
        description="How generative rungs are asked to classify (as in a compare spec).",
    )
    train: TrainSpec | None = Field(
        default=None, description="Training data, for rungs that need training."
    )

    @field_validator("labels")
    @classmethod
    def _two_or_more(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None and len(set(labels)) < 2:
            raise ValueError("list at least two distinct labels")
        return labels


class ModelEntry(_Served):
    """One rung the server loads."""

    id: str = Field(description="provider:name, e.g. llamacpp:smollm2-135m-instruct.")
    name: str | None = Field(
        default=None, description="Public name clients use in /v1/models. Default: the id."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")
    price: TokenPrice | None = Field(
        default=None,
        description="USD per million tokens charged to keys for this model. Default: the API "
        "price for API models (genai-prices), nothing for self-hosted models.",
    )

    @property
    def public_name(self) -> str:
        return self.name or self.id


class CascadeEntry(_Served):
    """A cascade served as ``cascade:<name>``. ``rungs`` and any other field besides labels,
    prompt and train are the cascade model's own options (see `rung models`)."""

    model_config = ConfigDict(extra="allow")

    rungs: list[dict[str, Any]] = Field(
        min_length=1,
        description="From small to large: {model, options, threshold}; the last rung answers.",
    )

    def cascade_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"rungs": self.rungs}
        options.update(self.model_extra or {})
        return options


class AuthSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: bool = Field(
        default=True,
        description="Ask every /v1 and /graphql request for an API key (rung keys create). "
        "Off: anyone who reaches the port may call it; usage is logged without a key.",
    )


class LimitsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_input_chars: int = Field(
        default=20_000, ge=1, description="Longest text (or messages, together) per input."
    )
    max_batch: int = Field(default=64, ge=1, description="Most inputs in one request.")
    max_body_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body in bytes."
    )
    max_output_tokens: int = Field(
        default=1024, ge=1, description="Cap on the tokens one generation may produce."
    )
    default_max_tokens: int = Field(
        default=256, ge=1, description="Tokens generated when a request does not say."
    )
    default_rpm: int | None = Field(
        default=None, ge=1, description="Requests per minute for keys without their own limit."
    )
    default_budget_usd: float | None = Field(
        default=None, ge=0, description="Spend in USD for keys without their own budget."
    )
    shared_rate_limits: Literal["auto"] | bool = Field(
        default="auto",
        description="Count each key's requests per minute in the ledger database, so that "
        "replicas sharing it share the key's limit (the same token bucket as in one process: "
        "a burst of up to rpm, then one request every 60/rpm s), at the cost of one database "
        "statement per admitted request, batched under load. auto: shared when the ledger is "
        "PostgreSQL; in this process's memory (no database call) when it is SQLite. true: "
        "shared with an SQLite ledger too (several server processes sharing one ledger file; "
        "SQLite 3.35 or later). false: in each process's memory, so N replicas admit up to N "
        "times a key's rpm.",
    )


class LedgerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        default_factory=default_ledger_url,
        description="SQLAlchemy URL of the key and usage database: SQLite under the cache "
        "folder by default (a relative sqlite:///file.db is read from the config file's "
        "folder); postgresql://user:pass@host/db when several replicas share it.",
    )


class WebSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        default=True, description="Serve the web page at /web (runs, playground, flows, keys)."
    )
    admins: list[str] = Field(
        default_factory=list,
        description="Names or ids of the keys that may see every key and its usage on the page.",
    )
    session_hours: float = Field(
        default=12.0, gt=0, description="Hours a web login lasts before the key is asked again."
    )


class IndexEntry(BaseModel):
    """An index built by ``rung index`` that ``/v1/ask`` retrieves from."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        description="The index: the folder `rung index --out` wrote, a .db file (relative to "
        "the config file) or a store URL (postgresql://..., weaviate://...)."
    )
    model: str | None = Field(
        default=None,
        description="The embedding rung the index must have been built with; a request to an "
        "index built with another is refused (400). Default: whatever the index was built with.",
    )


class AskSpec(BaseModel):
    """Defaults of ``/v1/ask``; a request may override k, mode and min_confidence."""

    model_config = ConfigDict(extra="forbid")

    index: str | None = Field(
        default=None,
        description="The index a request without one asks. Default: the only one in indexes.",
    )
    k: int = Field(default=4, ge=1, le=50, description="Passages retrieved per question.")
    mode: Literal["hybrid", "vector", "keyword"] = Field(
        default="hybrid", description="Retrieval: hybrid (vector + keyword), vector or keyword."
    )
    min_confidence: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A cascade's rung keeps its answer when its grounded confidence (share of "
        "its sentences supported by the passages they cite) is at or above this; below, the "
        "question climbs to the next rung that generates.",
    )
    min_overlap: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="Share of a sentence's content words that must be in its cited passages "
        "for the sentence to count as supported.",
    )
    max_tokens: int = Field(default=256, ge=1, description="Tokens an answer may take.")


class ServeConfig(BaseModel):
    """What ``rung serve`` serves."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelEntry] = Field(default_factory=list, description="The rungs to load.")
    cascades: dict[str, CascadeEntry] = Field(
        default_factory=dict, description="Cascades, served as cascade:<name>."
    )
    indexes: dict[str, IndexEntry] = Field(
        default_factory=dict,
        description="Indexes /v1/ask retrieves from, by name; a bare string is the path.",
    )
    ask: AskSpec = Field(default_factory=AskSpec)
    auth: AuthSpec = Field(default_factory=AuthSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    ledger: LedgerSpec = Field(default_factory=LedgerSpec)
    runs_dir: Path = Field(
        default=Path("runs"),
        description="Folder of compare runs listed by GraphQL's runs and the web page.",
    )
    web: WebSpec = Field(default_factory=WebSpec)
    flows: list[Path] = Field(
        default_factory=list,
        description="Flow files served at /v1/flows/<name>/run and GraphQL's runFlow.",
    )
    # the folder relative paths are read from: the config file's
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("models", mode="before")
    @classmethod
    def _ids_as_entries(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("indexes", mode="before")
    @classmethod
    def _paths_as_entries(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _default_index(self) -> ServeConfig:
        if self.ask.index is not None and self.ask.index not in self.indexes:
            known = ", ".join(self.indexes) or "none"
            raise ValueError(f"ask.index {self.ask.index!r} is not in indexes (listed: {known})")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ServeConfig:
        names = [m.public_name for m in self.models] + [f"cascade:{n}" for n in self.cascades]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models served twice: {', '.join(dupes)}; give each a distinct name")
        return self

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def ledger_url(self) -> str:
        """The ledger URL, with a relative SQLite path read from the config file's folder."""
        url = self.ledger.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != prefix + ":memory:":
            path = Path(url.removeprefix(prefix))
            if not path.is_absolute():
                return prefix + str(self.resolve(path))
        return url

    def default_index(self) -> str | None:
        """The index a request that names none asks: ask.index, else the only one."""
        if self.ask.index is not None:
            return self.ask.index
        return next(iter(self.indexes)) if len(self.indexes) == 1 else None

    def index_location(self, name: str) -> str:
        """An index entry's path as ``Retriever.open`` takes it (relative paths from here)."""
        path = self.indexes[name].path
        return path if "://" in path else str(self.resolve(Path(path)))

    def resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def parse_config(
    data: object, source: str = "serve config", base_dir: Path | None = None
) -> ServeConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a serve config is a YAML mapping, got {type(data).__name__}")
    try:
        config = ServeConfig.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source}: {validation_message(e)}") from None
    if base_dir is not None:
        config._base_dir = base_dir
    return config


def load_config(path: Path) -> ServeConfig:
    if not path.is_file():
        raise SpecError(f"serve config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{path}: malformed YAML{where}: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    return parse_config(data, str(path), base_dir=path.resolve().parent)
