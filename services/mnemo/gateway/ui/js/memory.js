// Memory: core blocks (editable, with their limits), the recursive summary, recall and archival
// browse / search with pagination and dates, and document upload with progress.
import { api, upload } from "./api.js";
import { h, mount, toast, fmtTime, fmtInt, errorText } from "./dom.js";

const PAGE_SIZE = 10;

function blockEditor(agentPath, block) {
  const id = `block-${block.label}`;
  const limit = block.limit || 2000;
  const area = h("textarea", { id, rows: 4, maxlength: limit }, block.value);
  area.value = block.value;
  const counter = h("span", { class: "muted", id: `${id}-count`, "aria-live": "polite" });
  const count = () => { counter.textContent = `${area.value.length} / ${limit} characters`; };
  area.addEventListener("input", count);
  count();
  const save = h("button", { type: "submit", id: `save-${block.label}` }, `Save ${block.label}`);
  const form = h("form", { class: "block", dataset: { label: block.label } },
    h("label", { for: id }, `Core memory block “${block.label}”`), area, h("div", { class: "row" }, counter, save));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const saved = await api(`${agentPath}/memory/${encodeURIComponent(block.label)}`,
                              { method: "PUT", body: { value: area.value } });
      area.value = saved.value;
      count();
      form.dataset.saved = "1";
      toast(`Saved ${block.label}`);
    } catch (err) { toast(errorText(err), "error"); }
  });
  return form;
}

/** A search form over a paginated list (recall or archival). */
function pagedSearch({ id, title, fields, fetchPage, row }) {
  const results = h("ol", { class: "hits", id: `${id}-results` });
  const pageInfo = h("span", { id: `${id}-page`, "aria-live": "polite" });
  const prev = h("button", { type: "button", id: `${id}-prev` }, "Previous page");
  const next = h("button", { type: "button", id: `${id}-next` }, "Next page");
  let page = 1;
  async function load(p) {
    try {
      const data = await fetchPage(p, PAGE_SIZE);
      page = data.page || p;
      const pages = Math.max(1, Math.ceil((data.total || 0) / PAGE_SIZE));
      pageInfo.textContent = `page ${page} of ${pages} · ${fmtInt(data.total)} found`;
      prev.disabled = page <= 1;
      next.disabled = page >= pages;
      mount(results, (data.hits || []).map(row));
      if (!(data.hits || []).length) results.append(h("li", { class: "muted" }, "nothing here"));
    } catch (err) { toast(errorText(err), "error"); }
  }
  prev.addEventListener("click", () => load(page - 1));
  next.addEventListener("click", () => load(page + 1));
  const form = h("form", { class: "search", id: `${id}-form` }, fields, h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => { e.preventDefault(); load(1); });
  return { el: h("section", { class: "card", "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title` }, title), form, results, h("div", { class: "row pager" }, prev, pageInfo, next)), load };
}

function field(id, label, attrs = {}) {
  const input = h("input", { id, name: id, ...attrs });
  return [h("label", { for: id }, label), input];
}

function dayStart(value) { return value ? `${value}T00:00:00Z` : ""; }
function dayEnd(value) { return value ? `${value}T23:59:59.999Z` : ""; }

export async function memoryView(root, agent) {
  const agentPath = `/v1/agents/${encodeURIComponent(agent.id)}`;
  const core = await api(`${agentPath}/memory`);
  const counts = core.counts || {};

  const [qLabel, q] = field("recall-query", "Text", { type: "search" });
  const [sLabel, start] = field("recall-start", "From (date)", { type: "date" });
  const [eLabel, end] = field("recall-end", "To (date)", { type: "date" });
  const role = h("select", { id: "recall-role" }, ["", "user", "assistant", "tool", "system"].map(
    (r) => h("option", { value: r }, r || "any role")));
  const recall = pagedSearch({
    id: "recall", title: `Recall memory (${fmtInt(counts.recall)} messages)`,
    fields: [qLabel, q, sLabel, start, eLabel, end, h("label", { for: "recall-role" }, "Role"), role],
    fetchPage: (page, size) => api(`${agentPath}/recall`, { query: {
      query: q.value.trim(), start: dayStart(start.value), end: dayEnd(end.value), role: role.value, page, page_size: size } }),
    row: (hit) => h("li", {}, h("span", { class: "meta" }, `${fmtTime(hit.message.created_at)} · ${hit.message.role}`),
      h("p", {}, hit.message.text || (hit.message.tool_calls || []).map((c) => c.name).join(", "))),
  });

  const [aLabel, aq] = field("archival-query", "Text", { type: "search" });
  const [tLabel, tag] = field("archival-tag", "Tag", { type: "text" });
  const archival = pagedSearch({
    id: "archival", title: `Archival memory (${fmtInt(counts.archival)} passages)`,
    fields: [aLabel, aq, tLabel, tag],
    fetchPage: (page, size) => api(`${agentPath}/archival`, { query: {
      query: aq.value.trim(), tags: tag.value.trim() ? [tag.value.trim()] : undefined, page, page_size: size } }),
    row: (hit) => h("li", {}, h("span", { class: "meta" },
      `${fmtTime(hit.passage.created_at)}${(hit.passage.tags || []).length ? " · " + hit.passage.tags.join(", ") : ""}`),
      h("p", {}, hit.passage.text)),
  });

  const file = h("input", { id: "doc-file", type: "file", accept: ".txt,.md,.markdown,.pdf,text/plain,text/markdown,application/pdf" });
  const bar = h("progress", { id: "doc-progress", max: 100, value: 0, "aria-labelledby": "doc-title" });
  const percent = h("span", { id: "doc-percent", "aria-live": "polite" }, "");
  const uploadForm = h("form", { class: "card", id: "doc-form" },
    h("h2", { id: "doc-title" }, "Load a document into archival memory"),
    h("label", { for: "doc-file" }, "Document (text, Markdown or PDF)"), file,
    h("div", { class: "row" }, h("button", { type: "submit", id: "doc-upload" }, "Upload"), bar, percent));
  uploadForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const chosen = file.files && file.files[0];
    if (!chosen) { toast("Choose a file first", "error"); return; }
    const show = (p, text) => { bar.value = p; percent.textContent = text; };
    show(0, "0 %");
    try {
      // Bytes sent count up to 99 %; 100 % once the memory service has stored every passage.
      const done = await upload(`${agentPath}/documents`, chosen,
                                (sent, total) => show(Math.min(99, Math.floor((100 * sent) / total)),
                                                      `${Math.min(99, Math.floor((100 * sent) / total))} % uploaded`));
      show(100, `100 % · ${fmtInt(done.passages)} passages stored`);
      percent.dataset.done = "1";
      archival.load(1);
    } catch (err) { show(0, `failed: ${errorText(err)}`); }
  });

  mount(root,
    h("section", { class: "card", "aria-labelledby": "core-title" },
      h("h2", { id: "core-title" }, "Core memory"),
      (core.blocks || []).map((b) => blockEditor(agentPath, b)),
      h("h3", {}, "Recursive summary"),
      core.summary ? h("pre", { id: "summary", class: "summary" }, core.summary)
                   : h("p", { id: "summary", class: "muted" }, "No summary yet: nothing has been evicted from the context.")),
    recall.el, archival.el, uploadForm);
  recall.load(1);
  archival.load(1);
}
