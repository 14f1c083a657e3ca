// The playground: one prompt to each chosen rung at once, each answer streamed from the
// server's own /v1/chat/completions. The session cookie and its CSRF token (a header another
// site cannot set) stand for the key, which this page never sees.
"use strict";

const csrf = document.querySelector("main").dataset.csrf;
const form = document.getElementById("playground");
const answers = document.getElementById("answers");
const template = document.getElementById("answer");

function fmtMs(ms) {
  return ms >= 10 ? `${Math.round(ms)} ms` : `${ms.toFixed(1)} ms`;
}

function fmtUsd(x) {
  if (x === null || x === undefined) return "–";
  if (x === 0) return "$0";
  return "$" + x.toPrecision(2);
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : `HTTP ${response.status}`;
  } catch (e) {
    return `HTTP ${response.status}`;
  }
}

async function ask(model, prompt, maxTokens, card) {
  const text = card.querySelector(".text");
  const problem = card.querySelector(".error");
  const started = performance.now();
  let first = null;
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Rung-CSRF": csrf },
    body: JSON.stringify({
      model: model,
      messages: [{ role: "user", content: prompt }],
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.ok) {
    problem.textContent = await errorOf(response);
    problem.hidden = false;
    card.dataset.state = "error";
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") {
          card.querySelector(".latency").textContent = fmtMs(performance.now() - started);
          card.dataset.state = "done";
          continue;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) {
          problem.textContent = chunk.error.message;
          problem.hidden = false;
          card.dataset.state = "error";
          continue;
        }
        for (const choice of chunk.choices || []) {
          const piece = choice.delta && choice.delta.content;
          if (piece) {
            if (first === null) {
              first = performance.now() - started;
              card.querySelector(".ttft").textContent = fmtMs(first);
            }
            text.textContent += piece;
          }
        }
        if (chunk.rung) card.querySelector(".cost").textContent = fmtUsd(chunk.rung.cost_usd);
        if (chunk.usage) {
          card.querySelector(".tokens").textContent =
            `${chunk.usage.prompt_tokens} in, ${chunk.usage.completion_tokens} out`;
        }
      }
    }
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const prompt = data.get("prompt");
  const maxTokens = parseInt(data.get("max_tokens"), 10) || 64;
  answers.replaceChildren();
  for (const model of data.getAll("model")) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector(".model").textContent = model;
    card.dataset.model = model;
    card.dataset.state = "streaming";
    answers.append(card);
    ask(model, prompt, maxTokens, card).catch((e) => {
      const problem = card.querySelector(".error");
      problem.textContent = `the request failed: ${e.message}`;
      problem.hidden = false;
      card.dataset.state = "error";
    });
  }
});
