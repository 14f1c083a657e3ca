// The flows page: a flow's inputs go to POST /web/flows/NAME; its output and each step's trace
// come back as JSON and are shown under the form.
"use strict";

const csrf = document.querySelector("main").dataset.csrf;

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

for (const form of document.querySelectorAll("form.flow-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const section = form.closest("section");
    const result = section.querySelector(".flow-result");
    const problem = section.querySelector(".error");
    problem.hidden = true;
    const inputs = Object.fromEntries(new FormData(form).entries());
    const response = await fetch(`/web/flows/${encodeURIComponent(form.dataset.flow)}`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Rung-CSRF": csrf },
      body: JSON.stringify(inputs),
    });
    const body = await response.json();
    if (!response.ok) {
      problem.textContent = body.error ? body.error.message : `HTTP ${response.status}`;
      problem.hidden = false;
      return;
    }
    section.querySelector(".flow-output").textContent =
      typeof body.output === "string" ? body.output : JSON.stringify(body.output, null, 2);
    const rows = section.querySelector(".trace tbody");
    rows.replaceChildren();
    for (const step of body.steps || []) {
      const row = document.createElement("tr");
      cell(row, step.name);
      cell(row, step.kind || "");
      cell(row, step.latency_ms === undefined ? "–" : `${Math.round(step.latency_ms)} ms`);
      cell(row, typeof step.output === "string" ? step.output : JSON.stringify(step.output));
      rows.append(row);
    }
    result.hidden = false;
  });
}
