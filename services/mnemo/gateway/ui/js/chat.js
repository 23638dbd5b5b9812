// Chat: a turn's events stream in as they are committed (thoughts, function calls and returns,
// replies, alerts). The turn in flight is remembered in session storage with the last event
// sequence seen, so a reload picks the stream up where it stopped (GET /events?follow&after=<seq>).
import { api, sse } from "./api.js";
import { h, toast, fmtInt, fmtMs, errorText } from "./dom.js";

const FINAL = new Set(["turn_completed", "turn_failed"]);

function pendingStore(agentId) {
  const key = `mnemo.pending.${agentId}`;
  return {
    get: () => { try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch { return null; } },
    set: (value) => sessionStorage.setItem(key, JSON.stringify(value)),
    clear: () => sessionStorage.removeItem(key),
  };
}

function args(text) {
  try {
    const parsed = JSON.parse(text || "{}");
    delete parsed.request_heartbeat;
    return JSON.stringify(parsed);
  } catch { return text || ""; }
}

function eventElement(ev) {
  switch (ev.type) {
    case "inner_thought":
      return h("div", { class: "event thought" }, h("span", { class: "tag" }, "thinks "), h("em", {}, ev.text));
    case "function_call":
      return h("div", { class: "event call" }, h("span", { "aria-hidden": "true" }, "⚡ "),
        h("code", { class: "fname" }, ev.name), h("code", {}, `(${args(ev.arguments)})`));
    case "function_return":
      return h("div", { class: `event return ${ev.status === "error" ? "failed" : ""}` },
        h("span", { "aria-hidden": "true" }, "↩ "), h("code", { class: "fname" }, ev.name), ` ${ev.status}: `,
        h("span", { class: "result" }, (ev.result || "").slice(0, 400)));
    case "assistant_message":
      return h("div", { class: "msg agent" }, h("span", { class: "who" }, "Agent"), h("p", {}, ev.text));
    case "system_alert":
      return h("div", { class: "event alert", role: "note" }, h("span", { "aria-hidden": "true" }, "⚠ "), ev.text);
    case "usage": {
      const t = ev.timing || {};
      return h("div", { class: "event usage" },
        `step ${ev.step} · ${fmtInt(ev.prompt_tokens)} + ${fmtInt(ev.completion_tokens)} tokens`,
        t.model_latency_ms ? ` · model ${fmtMs(t.model_latency_ms)}` : "");
    }
    case "turn_completed":
      return h("div", { class: "event end" }, `turn ended: ${ev.stop_reason} · ${ev.steps} step${ev.steps === 1 ? "" : "s"}`);
    case "turn_failed":
      return h("div", { class: "event failed", role: "alert" }, `turn failed: ${ev.error}`);
    default:
      return null;
  }
}

export async function chatView(root, agent) {
  const agentPath = `/v1/agents/${encodeURIComponent(agent.id)}`;
  const pending = pendingStore(agent.id);
  const log = h("ol", { id: "chat-log", class: "chat-log", role: "log", "aria-live": "polite",
                        "aria-label": "Conversation", tabindex: 0 });
  const input = h("textarea", { id: "chat-input", rows: 2, required: true,
                                placeholder: "Message — Enter sends, Shift+Enter starts a new line" });
  const send = h("button", { type: "submit", id: "chat-send" }, "Send");
  const status = h("p", { id: "chat-status", class: "muted", "aria-live": "polite" });
  const form = h("form", { class: "chat-form", id: "chat-form" },
    h("label", { for: "chat-input" }, "Message"), h("div", { class: "row" }, input, send), status);
  root.append(log, form);

  const seen = new Set();
  const blocks = new Map();
  let lastSeq = 0;
  let controller = null;

  function block(turnId, userText) {
    let el = blocks.get(turnId);
    if (!el) {
      el = h("li", { class: "turn", dataset: { turn: turnId } });
      blocks.set(turnId, el);
      log.append(el);
    }
    if (userText && !el.querySelector(".msg.user")) {
      el.prepend(h("div", { class: "msg user" }, h("span", { class: "who" }, "You"), h("p", {}, userText)));
    }
    return el;
  }

  function render(ev) {
    if (ev.seq) {
      if (seen.has(ev.seq)) return;
      seen.add(ev.seq);
      lastSeq = Math.max(lastSeq, ev.seq);
    }
    const el = eventElement(ev);
    if (!el) return;
    el.dataset.seq = ev.seq || "";
    el.dataset.type = ev.type;
    block(ev.turn_id).append(el);
    log.scrollTop = log.scrollHeight;
  }

  function busy(on, text = "") {
    send.disabled = on;
    status.textContent = text;
  }

  // Follow a turn's stream to its final event; a stream that breaks off is picked up again
  // after the last sequence seen (a few tries, a little later each time).
  async function follow(stream, turn, retries = 5) {
    busy(true, "the agent is working…");
    let final = false;
    try {
      for await (const frame of stream) {
        const ev = frame.data;
        if (!ev || typeof ev !== "object") continue;
        if (frame.id) ev.seq = Number(frame.id);
        render(ev);
        turn.seq = Math.max(turn.seq || 0, ev.seq || 0);
        if (turn.turn_id) pending.set(turn);
        if (FINAL.has(ev.type)) { pending.clear(); final = true; break; }
      }
    } catch (err) {
      if (err.name === "AbortError") { busy(false); return; }
      if (!turn.turn_id || retries <= 0) { busy(false, `stream interrupted: ${errorText(err)}`); return; }
    }
    if (final || !turn.turn_id) { busy(false); return; }
    if (retries <= 0) { busy(false, "the stream ended before the turn did; reload to follow it"); return; }
    await new Promise((resolve) => setTimeout(resolve, 500 * (6 - retries)));
    if (controller && controller.signal.aborted) { busy(false); return; }
    await follow(resumeStream(turn), turn, retries - 1);
  }

  function resumeStream(turn) {
    controller = new AbortController();
    const after = Math.max(lastSeq, turn.seq || 0);
    status.dataset.resumedAfter = String(after);
    return sse(`${agentPath}/events`, { query: { follow: true, turn_id: turn.turn_id, after }, signal: controller.signal });
  }

  async function submit() {
    const text = input.value.trim();
    if (!text || send.disabled) return;
    input.value = "";
    controller = new AbortController();
    const turn = { turn_id: "", text, seq: lastSeq };
    const stream = sse(`${agentPath}/messages/stream`, {
      method: "POST", body: { message: text }, signal: controller.signal,
      onOpen: (res) => {
        turn.turn_id = res.headers.get("X-Turn-Id") || "";
        if (turn.turn_id) { pending.set(turn); block(turn.turn_id, text); }
      },
    });
    await follow(stream, turn);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });

  // History: the recent turns' events, with the user's words from recall (or from this tab).
  try {
    const { turns } = await api(`${agentPath}/turns`, { query: { limit: 10 } });
    if (turns.length) {
      const users = {};
      const recall = await api(`${agentPath}/recall`, { query: { role: "user", page_size: 50 } }).catch(() => ({ hits: [] }));
      for (const hit of recall.hits || []) users[hit.message.turn_id] = hit.message.text;
      const oldest = turns[turns.length - 1];
      const { events } = await api(`${agentPath}/events`, { query: { after: Math.max(0, oldest.first_seq - 1) } });
      for (const ev of events) { block(ev.turn_id, users[ev.turn_id]); render(ev); }
    }
  } catch (err) {
    toast(`history: ${errorText(err)}`, "error");
  }

  // A turn that was in flight when the page went away: resume it after the last sequence seen.
  const inflight = pending.get();
  if (inflight && inflight.turn_id) {
    const done = [...(blocks.get(inflight.turn_id)?.children || [])].some((el) => FINAL.has(el.dataset.type));
    if (done) pending.clear();
    else {
      block(inflight.turn_id, inflight.text);
      follow(resumeStream(inflight), inflight);
    }
  }
  input.focus();
  return () => { if (controller) controller.abort(); };
}
