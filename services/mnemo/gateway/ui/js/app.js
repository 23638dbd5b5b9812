// The console's shell: the key gate, the hash router and the agent page's tabs.
import { api, apiKey, ApiError } from "./api.js";
import { h, mount, toast, errorText } from "./dom.js";
import { agentsView } from "./agents.js";
import { chatView } from "./chat.js";
import { memoryView } from "./memory.js";
import { contextView } from "./context.js";
import { timelineView } from "./timeline.js";
import { usageView } from "./usage.js";

const TABS = [
  ["chat", "Chat", chatView],
  ["memory", "Memory", memoryView],
  ["context", "Context window", contextView],
  ["timeline", "Turn timeline", timelineView],
  ["usage", "Usage", usageView],
];

const main = document.getElementById("main");
const forget = document.getElementById("forget-key");
let leaving = null;   // cleanup of the current view (an open stream)

forget.addEventListener("click", () => {
  apiKey.clear();
  window.location.hash = "#/";
  route();
});

function keyView() {
  const input = h("input", { id: "key-input", type: "password", autocomplete: "off", required: true,
                             placeholder: "mk-…", "aria-describedby": "key-help" });
  const error = h("p", { class: "error", id: "key-error", role: "alert" });
  const form = h("form", { class: "card narrow", id: "key-form" },
    h("h1", {}, "Sign in with an API key"),
    h("label", { for: "key-input" }, "API key"), input,
    h("p", { class: "muted", id: "key-help" },
      "Kept in this tab's session storage only and sent as a header; `mnemo up` writes the local key to ",
      h("code", {}, "$MNEMO_HOME/api_key"), "."),
    h("button", { type: "submit", id: "key-submit" }, "Use this key"), error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    apiKey.set(input.value.trim());
    try {
      await api("/v1/agents", { query: { page_size: 1 } });
      route();
    } catch (err) {
      apiKey.clear();
      error.textContent = err instanceof ApiError && err.status === 401 ? "That key was refused." : errorText(err);
    }
  });
  mount(main, form);
  input.focus();
}

async function agentPage(agentId, tab) {
  let agent;
  try {
    agent = await api(`/v1/agents/${encodeURIComponent(agentId)}`);
  } catch (err) {
    mount(main, h("p", { class: "error", role: "alert" }, errorText(err)), h("a", { href: "#/" }, "Back to agents"));
    return;
  }
  const current = TABS.find(([name]) => name === tab) || TABS[0];
  const nav = h("nav", { class: "tabs", "aria-label": "Agent views" },
    TABS.map(([name, label]) => h("a", {
      href: `#/agents/${encodeURIComponent(agentId)}/${name}`, id: `tab-${name}`,
      "aria-current": name === current[0] ? "page" : false,
    }, label)));
  const body = h("section", { id: `view-${current[0]}`, class: "view", "aria-labelledby": `tab-${current[0]}` });
  mount(main,
    h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Agents"), " / ",
      h("strong", { id: "agent-name" }, agent.name || agent.id), " ",
      h("span", { class: "muted" }, `${agent.model} · ${agent.id}`)),
    nav, body);
  leaving = (await current[2](body, agent)) || null;
}

async function route() {
  if (leaving) { try { leaving(); } catch { /* view already gone */ } leaving = null; }
  forget.hidden = !apiKey.get();
  if (!apiKey.get()) { keyView(); return; }
  const parts = window.location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "agents" && parts[1]) await agentPage(parts[1], parts[2] || "chat");
    else await agentsView(main);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) { apiKey.clear(); keyView(); toast("The key was refused.", "error"); return; }
    toast(errorText(err), "error");
  }
}

window.addEventListener("hashchange", route);
route();
