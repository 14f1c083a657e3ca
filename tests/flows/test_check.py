"""A broken flow file is refused before anything runs, with one error naming file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.errors import SpecError
from rung.flows import load_flow
from tests.flows.conftest import write_flow

HEAD = """
name: t
inputs:
  question: string
steps:
"""


def refused(tmp_path: Path, text: str) -> str:
    path = write_flow(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_flow(path)
    return str(info.value)


def test_a_good_flow_is_ordered_and_versioned(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        HEAD
        + """
  - id: answer
    type: model
    model: llamacpp:smollm2-135m-instruct
    prompt: "{{ask.output}}"
  - id: ask
    type: prompt
    template: "Q: {{inputs.question}}"
outputs:
  answer: "{{answer.output}}"
""",
    )
    flow = load_flow(path)
    # a step runs after the steps it reads, whatever the file's order
    assert flow.order == ("ask", "answer")
    assert len(flow.version) == 12
    assert flow.input_schema() == {
        "type": "object",
        "properties": {"question": {"type": "string"}},
        "required": ["question"],
    }
    path.write_text(path.read_text() + "# a comment\n")
    assert load_flow(path).version != flow.version


def test_unknown_step_names_its_line(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: ask
    type: prompt
    template: "Q: {{inputs.question}}"
  - id: answer
    type: model
    model: llamacpp:smollm2-135m-instruct
    prompt: "{{aks.output}}"
""",
    )
    assert message.startswith(f"{tmp_path / 'flow.yaml'}:12: ")
    assert "unknown step 'aks'" in message and "did you mean 'ask'" in message


def test_unknown_input(tmp_path: Path) -> None:
    message = refused(
        tmp_path, HEAD + '  - {id: ask, type: prompt, template: "{{inputs.questoin}}"}\n'
    )
    assert ":5: " in message and "no input 'questoin'" in message


def test_a_cycle_is_named(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: a
    type: prompt
    template: "{{b.output}}"
  - id: b
    type: prompt
    template: "{{a.output}}"
""",
    )
    assert ":6: " in message
    assert "cycle: a -> b -> a" in message


def test_type_mismatch_route_on_retrieved_chunks(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: hits
    type: retrieve
    index: idx
    query: "{{inputs.question}}"
  - id: pick
    type: route
    by: "{{hits.output}}"
    cases: {maybe: hits}
""",
    )
    assert ":12: " in message and "type mismatch" in message and "hits" in message


def test_threshold_route_needs_a_confidence(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: ask
    type: prompt
    template: "{{inputs.question}}"
  - id: pick
    type: route
    by: "{{ask.output}}"
    threshold: 0.5
    above: ask
    below: ask
""",
    )
    assert ":11: " in message and "type mismatch" in message


def test_route_case_that_is_not_a_label(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: mood
    type: classify
    model: encoder:minilm-l6
    text: "{{inputs.question}}"
    labels: [negative, positive]
  - id: pick
    type: route
    by: "{{mood.output}}"
    cases:
      negative: mood
      postive: mood
""",
    )
    assert ":16: " in message and "'postive' is not a label" in message


def test_field_of_an_extract_schema(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: order
    type: extract
    model: llamacpp:smollm2-135m-instruct
    text: "{{inputs.question}}"
    schema: {type: object, properties: {order_id: {type: string}}}
  - id: say
    type: prompt
    template: "Order {{order.output.orderid}}"
""",
    )
    assert ":13: " in message and "no field 'orderid'" in message and "order_id" in message


def test_unknown_field_and_step_type(tmp_path: Path) -> None:
    message = refused(tmp_path, HEAD + "  - {id: a, type: prompt, template: x, temprature: 1}\n")
    assert ":5: " in message and "unknown field 'steps.0.temprature'" in message
    message = refused(tmp_path, HEAD + "  - id: a\n    type: shell\n")
    assert ":5: " in message and "unknown step type" in message


def test_malformed_yaml_and_malformed_reference(tmp_path: Path) -> None:
    message = refused(tmp_path, HEAD + "  - id: a\n   type: [prompt\n")
    assert "malformed YAML" in message and "flow.yaml:" in message
    message = refused(tmp_path, HEAD + '  - {id: a, type: prompt, template: "{{ question }}"}\n')
    assert ":5: " in message and "malformed reference {{ question }}" in message


def test_http_host_not_allowed(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD
        + """
  - id: call
    type: http
    url: http://example.com/x
    allowed_hosts: [127.0.0.1]
""",
    )
    assert ":8: " in message and "not in allowed_hosts" in message


def test_code_step_outside_the_language(tmp_path: Path) -> None:
    message = refused(
        tmp_path, HEAD + "  - {id: a, type: code, expr: \"__import__('os').system('ls')\"}\n"
    )
    assert ":5: " in message and "unknown function" in message


def test_duplicate_ids(tmp_path: Path) -> None:
    message = refused(
        tmp_path,
        HEAD + "  - {id: a, type: prompt, template: x}\n  - {id: a, type: prompt, template: y}\n",
    )
    assert ":6: " in message and "used twice" in message


def test_what_the_steps_use_is_checked_before_a_load(tmp_path: Path) -> None:
    from rung.flows import FlowRunner

    def check(step: str) -> str:
        flow = load_flow(write_flow(tmp_path, HEAD + step))
        with pytest.raises(SpecError) as info:
            FlowRunner(flow).check()
        return str(info.value)

    message = check('  - {id: a, type: retrieve, index: no-index, query: "{{inputs.question}}"}\n')
    assert ":5: step 'a': no index at " in message and "rung index" in message
    message = check(
        '  - id: a\n    type: model\n    model: llamacpp:smolm2\n    prompt: "{{inputs.question}}"\n'
    )
    assert ":7: step 'a': " in message
    message = check(
        "  - id: a\n    type: classify\n    model: encoder:minilm-l6\n"
        '    text: "{{inputs.question}}"\n    labels: [a, b]\n'
    )
    assert ":7: step 'a': encoder:minilm-l6 needs training first" in message
