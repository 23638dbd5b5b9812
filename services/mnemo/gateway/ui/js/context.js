// The context window of the agent's last step as one bar: tokens by section against the window,
// with the lines where the memory-pressure warning and compaction start.
import { api } from "./api.js";
import { h, mount, fmtInt, fmtTime } from "./dom.js";

function pct(part, whole) { return whole ? (100 * part) / whole : 0; }

export async function contextView(root, agent) {
  const ctx = await api(`/v1/agents/${encodeURIComponent(agent.id)}/context`);
  if (!ctx.available) {
    mount(root, h("section", { class: "card" }, h("h2", {}, "Context window"),
      h("p", { id: "context-empty", class: "muted" }, "The agent has not run a step yet: send it a message.")));
    return;
  }
  const window = ctx.context_window || ctx.total_tokens;
  const bar = h("div", { id: "context-bar", class: "ctx-bar", role: "img",
    "aria-label": `${fmtInt(ctx.total_tokens)} of ${fmtInt(window)} tokens in use, by section` },
    ctx.sections.filter((s) => s.tokens > 0).map((s) => h("div", {
      class: `seg seg-${s.name}`, title: `${s.label}: ${fmtInt(s.tokens)} tokens`,
      style: { width: `${pct(s.tokens, window)}%` }, dataset: { section: s.name } })),
    h("div", { class: "line warn", style: { left: `${pct(ctx.warning_tokens, window)}%` },
               title: `memory warning at ${fmtInt(ctx.warning_tokens)} prompt tokens` }),
    h("div", { class: "line compact", style: { left: `${pct(ctx.compaction_tokens, window)}%` },
               title: `compaction at ${fmtInt(ctx.compaction_tokens)} prompt tokens` }));
  const rows = ctx.sections.map((s) => h("tr", { dataset: { section: s.name, tokens: s.tokens } },
    h("td", {}, h("span", { class: `swatch seg-${s.name}`, "aria-hidden": "true" }), s.label),
    h("td", { class: "num" }, fmtInt(s.tokens)), h("td", { class: "num" }, `${pct(s.tokens, window).toFixed(1)} %`)));
  mount(root, h("section", { class: "card" },
    h("h2", {}, "Context window of the last step"),
    h("p", { class: "muted" }, `turn ${ctx.turn_id}, step ${ctx.step} · ${fmtTime(ctx.created_at)} · ${ctx.model}`),
    bar,
    h("div", { class: "ctx-scale" }, h("span", { class: "start" }, "0"),
      h("span", { class: "mark warn-label", style: { left: `${pct(ctx.warning_tokens, window)}%` } },
        `${Math.round(100 * ctx.warning_fraction)} % warning`),
      h("span", { class: "mark compact-label", style: { left: `${pct(ctx.compaction_tokens, window)}%` } },
        `${Math.round(100 * ctx.compaction_fraction)} % compaction`),
      h("span", { class: "end" }, `${fmtInt(window)} tokens`)),
    h("table", { class: "table legend", id: "context-legend" },
      h("caption", {}, "Tokens by section (the warning and compaction lines are fractions of the window less the reserved completion)"),
      h("thead", {}, h("tr", {}, ["Section", "Tokens", "Share of window"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row" }, "Total"),
        h("td", { class: "num", id: "context-total", dataset: { tokens: ctx.total_tokens } }, fmtInt(ctx.total_tokens)),
        h("td", { class: "num" }, `${pct(ctx.total_tokens, window).toFixed(1)} % of ${fmtInt(window)}`))))));
}
