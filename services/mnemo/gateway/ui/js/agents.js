// Agents: list, search, create (persona / human from the libraries, model, context window), delete.
import { api } from "./api.js";
import { h, mount, toast, fmtTime, fmtInt, errorText } from "./dom.js";

async function options(path, key) {
  try { return (await api(path))[key] || []; } catch { return []; }
}

function select(id, label, items, { blank } = {}) {
  const el = h("select", { id, name: id },
    blank ? h("option", { value: "" }, blank) : null,
    items.map(([value, text]) => h("option", { value }, text)));
  return [h("label", { for: id }, label), el];
}

export async function agentsView(root) {
  const [list, personas, humans, models] = await Promise.all([
    api("/v1/agents", { query: { page_size: 100 } }),
    options("/v1/personas", "templates"), options("/v1/humans", "templates"), api("/v1/models").catch(() => null),
  ]);
  let agents = list.agents || [];
  let page = 1;
  const chatModels = ((models && models.models) || []).filter((m) => !m.embedding);
  const windows = Object.fromEntries(chatModels.map((m) => [m.name, m.context_window]));

  const search = h("input", { id: "agent-search", type: "search", placeholder: "name or id" });
  const tbody = h("tbody", { id: "agent-rows" });
  const count = h("p", { class: "muted", id: "agent-count", "aria-live": "polite" });
  const more = h("button", { type: "button", id: "agent-more" }, "Load more agents");
  more.addEventListener("click", async () => {
    try {
      const next = await api("/v1/agents", { query: { page_size: 100, page: page + 1 } });
      page += 1;
      agents = agents.concat(next.agents || []);
      draw();
    } catch (err) { toast(errorText(err), "error"); }
  });

  function draw() {
    const q = search.value.trim().toLowerCase();
    const shown = agents.filter((a) => !q || (a.name || "").toLowerCase().includes(q) || a.id.toLowerCase().includes(q));
    count.textContent = `${shown.length} of ${list.total} agents${agents.length < list.total ? ` (${agents.length} loaded)` : ""}`;
    more.hidden = agents.length >= list.total;
    mount(tbody, shown.map((a) => {
      const del = h("button", { type: "button", class: "danger", "aria-label": `Delete ${a.name || a.id}` }, "Delete");
      del.addEventListener("click", async () => {
        if (del.dataset.armed !== "1") { del.dataset.armed = "1"; del.textContent = "Confirm delete"; return; }
        try {
          await api(`/v1/agents/${encodeURIComponent(a.id)}`, { method: "DELETE" });
          agents = agents.filter((x) => x.id !== a.id);
          list.total -= 1;
          toast(`Deleted ${a.name || a.id}`);
          draw();
        } catch (err) { toast(errorText(err), "error"); }
      });
      return h("tr", { dataset: { agent: a.id } },
        h("td", {}, h("a", { href: `#/agents/${encodeURIComponent(a.id)}/chat` }, a.name || "(unnamed)")),
        h("td", {}, h("code", {}, a.id)), h("td", {}, a.model), h("td", { class: "num" }, a.context_window ? fmtInt(a.context_window) : "model default"),
        h("td", {}, fmtTime(a.created_at)), h("td", {}, del));
    }));
  }
  search.addEventListener("input", draw);

  const name = h("input", { id: "create-name", name: "name", maxlength: 200, placeholder: "sam" });
  const windowInput = h("input", { id: "create-window", type: "number", min: 0, step: 1, placeholder: "model default" });
  const [personaLabel, persona] = select("create-persona", "Persona", personas.map((t) => [t.name, t.name]), { blank: "default" });
  const [humanLabel, human] = select("create-human", "Human", humans.map((t) => [t.name, t.name]), { blank: "default" });
  const [modelLabel, model] = select("create-model", "Model",
    chatModels.map((m) => [m.name, `${m.name} (${fmtInt(m.context_window)} tokens)`]), { blank: "server default" });
  model.addEventListener("change", () => { windowInput.placeholder = windows[model.value] ? `${windows[model.value]}` : "model default"; });
  const form = h("form", { id: "create-form", class: "card grid" },
    h("h2", {}, "New agent"),
    h("label", { for: "create-name" }, "Name"), name, personaLabel, persona, humanLabel, human, modelLabel, model,
    h("label", { for: "create-window" }, "Context window (tokens)"), windowInput,
    h("button", { type: "submit", id: "create-submit" }, "Create agent"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim() || undefined, persona_name: persona.value || undefined,
                   human_name: human.value || undefined, model: model.value || undefined };
    if (windowInput.value) body.context_window = Number(windowInput.value);
    try {
      const created = await api("/v1/agents", { method: "POST", body });
      toast(`Created ${created.name || created.id}`);
      window.location.hash = `#/agents/${encodeURIComponent(created.id)}/chat`;
    } catch (err) { toast(errorText(err), "error"); }
  });

  mount(root,
    h("section", { class: "card" },
      h("h1", {}, "Agents"),
      h("label", { for: "agent-search" }, "Search agents"), search, count,
      h("table", { class: "table" },
        h("thead", {}, h("tr", {}, ["Name", "Id", "Model", "Window", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
        tbody), more),
    form);
  draw();
}
