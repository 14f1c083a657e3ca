"""How a loaded GGUF model is prompted: the GGUF's own chat template, rendered exactly as
llama-cpp-python renders it for chat completions, or, for a model without one (a base model:
``gemma-3-270m`` ships none), a plain text prompt: to label a text, the few-shot completion
format of ``rung.models.completion`` (the label follows ``Answer:`` after a space); to generate,
a ``User:`` / ``Assistant:`` transcript whose answer follows ``Assistant:`` after a space."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rung.errors import ConfigurationError
from rung.models.base import ChatMessage
from rung.models.completion import render_completion

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["PLAIN_ANSWER_CUE", "PLAIN_ROLES", "Prompter", "completion_tokens", "render_plain"]

#: the roles' names in the plain transcript given to models without a chat template
PLAIN_ROLES = {"system": "", "user": "User: ", "assistant": "Assistant: "}
PLAIN_ANSWER_CUE = "Assistant:"


def render_plain(messages: Sequence[ChatMessage]) -> str:
    """A transcript for models without a chat template, ending with the answer cue."""
    parts = [PLAIN_ROLES[m.role] + m.content.strip() for m in messages]
    return "\n\n".join([*parts, PLAIN_ANSWER_CUE])


def completion_tokens(llm: Llama, prompt: str) -> list[int]:
    """A text prompt's tokens as llama-cpp-python's create_completion makes them: the model's
    BOS (or CLS) when its tokenizer adds one, and its EOS (or SEP) when it adds one."""
    model = llm._model
    cls_token, bos = model.token_cls(), llm.token_bos()
    first = cls_token if cls_token != -1 else bos
    head = [first] if model.add_bos_token() and first != -1 else []
    sep = model.token_sep()
    tail = [sep if sep != -1 else llm.token_eos()] if model.add_eos_token() or sep != -1 else []
    return head + list(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)) + tail


def _as_list(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    return [stop] if isinstance(stop, str) else list(stop)


class Prompter:
    """The prompt of one loaded model: its chat template (llama_cpp's Jinja2ChatFormatter), or
    the plain transcript when ``template`` is None."""

    def __init__(self, model_id: str, template: Any = None) -> None:
        self.model_id = model_id
        self.template = template

    @classmethod
    def for_model(
        cls, llm: Llama, chat_template: str | None, model_id: str, formatter: Any
    ) -> Prompter:
        """The prompter of a freshly loaded Llama. ``formatter`` is llama_cpp's
        Jinja2ChatFormatter class, imported by the caller (which names the install command
        when it is missing)."""
        if chat_template is None:
            return cls(model_id)
        # The same formatter llama-cpp-python builds for chat completions; generate() is told
        # to use it too, so classify() and generate() prompt the model the same way.
        eos, bos = llm.token_eos(), llm.token_bos()
        template = formatter(
            template=chat_template,
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        if "chat_template.default" in llm._chat_handlers:
            llm.chat_format = "chat_template.default"
        return cls(model_id, template)

    def render(self, messages: Sequence[ChatMessage]) -> tuple[str, str]:
        """The prompt text a label is scored after, and what precedes the label."""
        if self.template is None:
            return render_completion(messages), " "
        return self.chat(messages).prompt, ""

    def chat(self, messages: Sequence[ChatMessage]) -> Any:
        """The chat template applied to the messages: llama-cpp-python's ChatFormatterResponse
        (the prompt, its stop strings, whether it holds its own BOS)."""
        import jinja2

        try:
            return self.template(
                messages=[{"role": m.role, "content": m.content} for m in messages]
            )
        except (jinja2.TemplateError, ValueError) as e:
            roles = ", ".join(m.role for m in messages)
            raise ConfigurationError(
                f"the chat template of {self.model_id} refuses these messages ({roles}): {e}; "
                "some templates take no system message or need user and assistant turns to "
                "alternate: adapt the prompt"
            ) from e

    def tokenize(self, llm: Llama, text: str) -> list[int]:
        # As llama-cpp-python does: a rendered template carries its own BOS; plain text gets
        # the model's default.
        return list(llm.tokenize(text.encode("utf-8"), add_bos=self.template is None, special=True))

    def generation_prompt(
        self, llm: Llama, messages: Sequence[ChatMessage], stop: Sequence[str]
    ) -> tuple[list[int], list[str], bool]:
        """What generate() feeds the model, as create_chat_completion (or create_completion,
        without a chat template) would: the prompt's tokens, the stop strings, and whether the
        answer's leading space is dropped (it follows "Assistant:" after a space)."""
        if self.template is not None:
            chat = self.chat(messages)
            prompt = list(
                llm.tokenize(
                    chat.prompt.encode("utf-8"), add_bos=not chat.added_special, special=True
                )
            )
            return prompt, [*stop, *_as_list(chat.stop)], False
        return completion_tokens(llm, render_plain(messages)), [*stop, "\n\nUser:"], True
