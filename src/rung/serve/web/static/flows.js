// The flows page: a flow's inputs go to the server's own POST /v1/flows/NAME/run (the session
// cookie and its CSRF header stand for the key); the outputs and each step's trace are shown
// under the form.
"use strict";

const csrf = document.querySelector("main").dataset.csrf;

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

function fmtUsd(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "$0";
  return "$" + x.toPrecision(2);
}

function shown(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "string" ? value : JSON.stringify(value);
}

for (const form of document.querySelectorAll("form.flow-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const section = form.closest("section");
    const result = section.querySelector(".flow-result");
    const problem = section.querySelector(".error");
    const button = form.querySelector("button");
    problem.hidden = true;
    result.hidden = true;
    section.dataset.state = "running";
    button.disabled = true;
    const inputs = Object.fromEntries(new FormData(form).entries());
    try {
      const response = await fetch(`/v1/flows/${encodeURIComponent(form.dataset.flow)}/run`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Rung-CSRF": csrf },
        body: JSON.stringify({ inputs: inputs }),
      });
      const body = await response.json();
      if (!response.ok) {
        problem.textContent = body.error ? body.error.message : `HTTP ${response.status}`;
        problem.hidden = false;
        section.dataset.state = "error";
        return;
      }
      section.querySelector(".flow-output").textContent = JSON.stringify(body.outputs, null, 2);
      section.querySelector(".flow-figures").textContent =
        `${Math.round(body.latency_ms)} ms · ${body.tokens_in} tokens in, ` +
        `${body.tokens_out} out · cost ${fmtUsd(body.cost_usd)}`;
      const rows = section.querySelector(".trace tbody");
      rows.replaceChildren();
      for (const step of body.trace || []) {
        const row = document.createElement("tr");
        cell(row, step.id);
        cell(row, step.type);
        cell(row, step.status);
        cell(row, `${Math.round(step.latency_ms)} ms`);
        cell(row, `${step.tokens_in} / ${step.tokens_out}`);
        cell(row, fmtUsd(step.cost_usd));
        cell(row, shown(step.output));
        rows.append(row);
      }
      result.hidden = false;
      section.dataset.state = "done";
    } catch (e) {
      problem.textContent = `the request failed: ${e.message}`;
      problem.hidden = false;
      section.dataset.state = "error";
    } finally {
      button.disabled = false;
    }
  });
}
