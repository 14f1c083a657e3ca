"""A flow file as pydantic models: typed inputs, a list of steps (one class per step type,
told apart by ``type``) and the outputs.

    name: faq-answer
    inputs:
      question: {type: string, description: What the customer asked}
    steps:
      - id: hits
        type: retrieve
        index: ../indexes/faq
        query: "{{inputs.question}}"
      - id: answer
        type: model
        model: llamacpp:smollm2-135m-instruct
        prompt: "Answer from these passages:\\n{{hits.output}}\\nQuestion: {{inputs.question}}"
    outputs:
      answer: "{{answer.output}}"

Every string field of a step may hold ``{{inputs.x}}`` and ``{{step.output}}`` references
(``rung.flows.refs``); they are checked before anything runs (``rung.flows.check``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ClassifyStep",
    "CodeStep",
    "ExtractStep",
    "FlowInput",
    "FlowSpec",
    "HttpStep",
    "InputType",
    "ModelStep",
    "PromptStep",
    "RetrieveStep",
    "RouteStep",
    "Step",
]

#: the types a flow's inputs may have
InputType = Literal["string", "integer", "number", "boolean"]

_ID = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class FlowInput(BaseModel):
    """One input a caller gives the flow."""

    model_config = ConfigDict(extra="forbid")

    type: InputType = Field(default="string", description="string, integer, number or boolean.")
    description: str | None = Field(default=None, description="Shown in forms and --help.")
    default: str | int | float | bool | None = Field(
        default=None, description="Value when the caller gives none; without one it is required."
    )


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID, description="Name other steps use: {{<id>.output}}.")

    @field_validator("id")
    @classmethod
    def _not_inputs(cls, value: str) -> str:
        if value == "inputs":
            raise ValueError("'inputs' names the flow's inputs: give the step another id")
        return value


class _ModelUse(BaseModel):
    """What a step that asks a model sets."""

    model: str = Field(description="Model id: any rung, e.g. llamacpp:smollm2-135m-instruct.")
    options: dict[str, Any] = Field(default_factory=dict, description="The backend's options.")


class RetrieveStep(_Step):
    """The chunks of a rung index that best answer a query (rung.rag.Retriever)."""

    type: Literal["retrieve"]
    index: str = Field(description="Index folder, .db file or store URL, relative to the flow.")
    query: str = Field(description="What to search for, usually {{inputs.question}}.")
    k: int = Field(default=4, ge=1, le=100, description="How many chunks.")
    mode: Literal["hybrid", "vector", "keyword"] = Field(default="hybrid")


class PromptStep(_Step):
    """A text made from a template; its output is the text."""

    type: Literal["prompt"]
    template: str = Field(description="The text, with {{...}} references.")


class ModelStep(_Step, _ModelUse):
    """A model's reply to a prompt; its output is the generated text."""

    type: Literal["model"]
    prompt: str = Field(description="The user message, with {{...}} references.")
    system: str | None = Field(default=None, description="A system message.")
    max_tokens: int = Field(default=128, ge=1, le=4096)
    temperature: float = Field(default=0.0, ge=0, le=2)


class ClassifyStep(_Step, _ModelUse):
    """A label for a text; its output is the label, ``confidence`` its score."""

    type: Literal["classify"]
    text: str = Field(description="The text to label, with {{...}} references.")
    labels: list[str] = Field(min_length=2, description="The label set.")
    instructions: str | None = Field(
        default=None, description="How generative rungs are asked (as a compare spec's prompt)."
    )

    @field_validator("labels")
    @classmethod
    def _distinct(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be distinct")
        return labels


class ExtractStep(_Step, _ModelUse):
    """JSON fields read from a model's answer and validated against a JSON schema; its output
    is the object, and ``{{step.output.<field>}}`` one of its fields."""

    type: Literal["extract"]
    text: str = Field(description="The text to read the fields from.")
    schema_: dict[str, Any] = Field(
        alias="schema",
        description="JSON schema of the object: type object with properties (and required).",
    )
    instructions: str | None = Field(default=None, description="Added to the model's prompt.")
    max_tokens: int = Field(default=256, ge=1, le=4096)

    @field_validator("schema_")
    @classmethod
    def _object_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            raise ValueError(f"not a valid JSON schema: {e.message}") from None
        if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
            raise ValueError("an extract schema is of type object, with properties")
        return schema


class RouteStep(_Step):
    """Picks the step that runs next: by the label ``by`` holds (``cases``), or by whether a
    confidence is at or above ``threshold`` (``above`` / ``below``). The steps it does not
    pick, and the steps that need them, are skipped. Its output is the picked step's id."""

    type: Literal["route"]
    # not `on`: YAML 1.1 reads a bare `on` key as the boolean true
    by: str = Field(description="{{step.output}} of a label (cases) or {{step.confidence}}.")
    cases: dict[str, str] = Field(default_factory=dict, description="Label -> step id.")
    default: str | None = Field(default=None, description="Step id when no case matches.")
    threshold: float | None = Field(default=None, ge=0, le=1)
    above: str | None = Field(default=None, description="Step id at or above the threshold.")
    below: str | None = Field(default=None, description="Step id below the threshold.")

    @field_validator("cases", mode="before")
    @classmethod
    def _labels_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, bool):
                    raise ValueError(
                        f"a case label was read by YAML as the boolean {str(key).lower()} "
                        "(yes, no, on, off, true, false): quote it, e.g. 'yes': step"
                    )
            return {str(k): v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _one_way(self) -> RouteStep:
        by_threshold = self.threshold is not None
        if by_threshold and (self.cases or self.default):
            raise ValueError("route either by cases (a label) or by threshold, not both")
        if by_threshold and not (self.above and self.below):
            raise ValueError("a threshold route names both above and below")
        if not by_threshold and not self.cases:
            raise ValueError("a route needs cases (label -> step) or a threshold")
        return self

    @property
    def targets(self) -> list[str]:
        found = [*self.cases.values(), self.default, self.above, self.below]
        return list(dict.fromkeys(t for t in found if t))


class HttpStep(_Step):
    """A call to a URL; its output is the JSON body of the reply (or its text)."""

    type: Literal["http"]
    url: str = Field(description="The URL, with {{...}} references.")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    allowed_hosts: list[str] = Field(
        min_length=1, description="Hosts the URL may name (after references are filled in)."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    json_: dict[str, Any] | None = Field(
        default=None, alias="json", description="Body sent as JSON; values may be references."
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    max_response_bytes: int = Field(default=1_000_000, ge=1)


class CodeStep(_Step):
    """A value computed by an expression of rung's small expression language
    (``rung.flows.expr``): no Python is run."""

    type: Literal["code"]
    expr: str = Field(description="e.g. lower(strip(answer.output)) == 'yes'")


Step = Annotated[
    RetrieveStep
    | PromptStep
    | ModelStep
    | ClassifyStep
    | ExtractStep
    | RouteStep
    | HttpStep
    | CodeStep,
    Field(discriminator="type"),
]


class FlowSpec(BaseModel):
    """A flow file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_ID, description="Served as flow:<name> and /v1/flows/<name>/run.")
    description: str | None = None
    inputs: dict[str, FlowInput] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="Output name -> template. Default: {output: <the last step's output>}.",
    )

    @field_validator("inputs", mode="before")
    @classmethod
    def _type_shorthand(cls, value: object) -> object:
        # `question: string` is short for `question: {type: string}`
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value
