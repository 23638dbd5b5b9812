// Turn timeline: each step's model latency, tokens, functions and their durations, stop reason,
// and its trace (a link when the gateway has MNEMO_TRACE_URL).
import { api } from "./api.js";
import { h, mount, fmtInt, fmtMs, fmtTime } from "./dom.js";

function stepRow(step) {
  const t = step.timing || {};
  const fns = (t.functions || []).map((f) => h("li", { class: f.status === "error" ? "failed" : "" },
    h("code", {}, f.name), ` ${fmtMs(f.duration_ms)}`, f.status === "error" ? " (error)" : ""));
  const total = Math.max(t.step_ms || 0, 0.01);
  const fnMs = (t.functions || []).reduce((sum, f) => sum + (f.duration_ms || 0), 0);
  const trace = t.trace_id
    ? (step.trace_url ? h("a", { href: step.trace_url, target: "_blank", rel: "noopener" }, t.trace_id.slice(0, 12) + "…")
                      : h("code", { title: t.trace_id }, t.trace_id.slice(0, 12) + "…"))
    : h("span", { class: "muted" }, "—");
  return h("tr", { dataset: { step: step.step } },
    h("th", { scope: "row" }, step.step),
    h("td", { class: "num" }, fmtMs(t.model_latency_ms)),
    h("td", { class: "num" }, `${fmtInt(step.prompt_tokens)} + ${fmtInt(step.completion_tokens)}`),
    h("td", {}, fns.length ? h("ul", { class: "fns" }, fns) : h("span", { class: "muted" }, "none")),
    h("td", { class: "num" }, fmtMs(t.step_ms),
      h("div", { class: "mini", "aria-hidden": "true" },
        h("span", { class: "m-model", style: { width: `${Math.min(100, (100 * (t.model_latency_ms || 0)) / total)}%` } }),
        h("span", { class: "m-fn", style: { width: `${Math.min(100, (100 * fnMs) / total)}%` } }))),
    h("td", {}, t.stop_reason || ""), h("td", {}, trace));
}

export async function timelineView(root, agent) {
  const { turns } = await api(`/v1/agents/${encodeURIComponent(agent.id)}/turns`, { query: { limit: 10 } });
  if (!turns.length) {
    mount(root, h("section", { class: "card" }, h("h2", {}, "Turn timeline"), h("p", { class: "muted" }, "No turns yet.")));
    return;
  }
  mount(root, turns.map((turn) => h("section", { class: "card turn-timeline", dataset: { turn: turn.turn_id } },
    h("h2", {}, `Turn ${turn.turn_id}`),
    h("p", { class: "muted" }, `${fmtTime(turn.started_at)} · ${turn.steps.length} step${turn.steps.length === 1 ? "" : "s"} · `,
      turn.completed ? `ended: ${turn.stop_reason}` : "running", turn.error ? ` — ${turn.error}` : ""),
    h("table", { class: "table" },
      h("thead", {}, h("tr", {}, ["Step", "Model latency", "Tokens (prompt + completion)", "Functions", "Step time",
                                  "Stop reason", "Trace"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, turn.steps.map(stepRow))))));
}
