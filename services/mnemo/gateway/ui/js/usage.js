// Usage per agent over time: a small stacked bar chart (prompt and completion tokens per bucket).
import { api } from "./api.js";
import { h, svg, mount, fmtInt, toast, errorText } from "./dom.js";

const RANGES = [["1h", 3600, 300], ["24h", 86400, 3600], ["7d", 7 * 86400, 6 * 3600], ["30d", 30 * 86400, 86400]];

function chart(usage) {
  const buckets = usage.buckets || [];
  const W = 720, H = 180, pad = 28;
  const max = Math.max(1, ...buckets.map((b) => b.prompt_tokens + b.completion_tokens));
  const bw = (W - pad) / Math.max(1, buckets.length);
  const bars = buckets.flatMap((b, i) => {
    const x = pad + i * bw;
    const hp = ((H - 20) * b.prompt_tokens) / max;
    const hc = ((H - 20) * b.completion_tokens) / max;
    const label = `${new Date(b.start).toLocaleString()}: ${fmtInt(b.prompt_tokens)} prompt + ${fmtInt(b.completion_tokens)} completion tokens, ${b.calls} calls`;
    return [
      svg("rect", { x, y: H - 20 - hp, width: Math.max(1, bw - 1), height: hp, class: "u-prompt" }, svg("title", {}, label)),
      svg("rect", { x, y: H - 20 - hp - hc, width: Math.max(1, bw - 1), height: hc, class: "u-completion" }, svg("title", {}, label)),
    ];
  });
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", id: "usage-chart", class: "usage-chart",
                      "aria-label": `tokens per ${usage.bucket_seconds / 60} minutes since ${usage.since}` },
    svg("line", { x1: pad, y1: H - 20, x2: W, y2: H - 20, class: "axis" }),
    svg("text", { x: 0, y: 12, class: "tick" }, fmtInt(max)),
    svg("text", { x: pad, y: H - 4, class: "tick" }, new Date(usage.since).toLocaleString()),
    ...bars);
}

export async function usageView(root, agent) {
  const range = h("select", { id: "usage-range" }, RANGES.map(([name]) => h("option", { value: name, selected: name === "24h" }, name)));
  const body = h("div", { id: "usage-body" });
  async function load() {
    const [, span, bucket] = RANGES.find(([name]) => name === range.value);
    try {
      const usage = await api(`/v1/agents/${encodeURIComponent(agent.id)}/usage`, {
        query: { since: new Date(Date.now() - span * 1000).toISOString(), bucket_seconds: bucket } });
      const totals = usage.totals || [];
      mount(body, chart(usage),
        h("p", { class: "legend-inline" }, h("span", { class: "swatch u-prompt" }), " prompt ",
          h("span", { class: "swatch u-completion" }), " completion"),
        h("table", { class: "table", id: "usage-totals" },
          h("thead", {}, h("tr", {}, ["Model", "Calls", "Prompt tokens", "Completion tokens"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, totals.length ? totals.map((t) => h("tr", {}, h("td", {}, t.model), h("td", { class: "num" }, fmtInt(t.calls)),
            h("td", { class: "num" }, fmtInt(t.prompt_tokens)), h("td", { class: "num" }, fmtInt(t.completion_tokens))))
            : h("tr", {}, h("td", { colspan: 4, class: "muted" }, "no model calls in this period")))));
    } catch (err) { toast(errorText(err), "error"); }
  }
  range.addEventListener("change", load);
  mount(root, h("section", { class: "card" }, h("h2", {}, "Token usage"),
    h("label", { for: "usage-range" }, "Period"), range, body));
  await load();
}
