"""The web console in a real browser (headless Chromium) against `mnemo up` with the scripted model:
key, agents, chat with streamed events, memory edits and an upload, the context bar, the turn
timeline, usage, and a reload in the middle of a turn. Every page is screenshotted into the test's
temporary folder; on failure the screenshots are copied to build/test-artifacts/<test>/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from tests.e2e.browser import Pages, chromium, wait_for
from tests.e2e.stack import Stack
from tests.scripted_llm import ScriptedLLM

SLOW_STEP = 12.0   # seconds the model takes for the reply of the turn that is reloaded mid-way


@pytest.fixture
def pages(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pages]:
    driver = chromium(tmp_path / "profile")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    p = Pages(driver, shots)
    try:
        yield p
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                p.shot("at-failure")
            except Exception:
                pass
            print(f"console screenshots kept in {p.keep(request.node.name)}")
        driver.quit()


def _by_id(driver: WebDriver, element_id: str):  # type: ignore[no-untyped-def]
    return wait_for(driver, lambda d: d.find_element(By.ID, element_id) if d.find_elements(By.ID, element_id)
                    else None, f"#{element_id}")


def _api(stack: Stack, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.request(kwargs.pop("method", "GET"), stack.base_url + path,
                         headers={"Authorization": f"Bearer {stack.api_key}"}, timeout=30, **kwargs)


def _texts(driver: WebDriver, css: str) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]


def test_the_console_end_to_end(stack: Stack, scripted_llm: ScriptedLLM, pages: Pages, tmp_path: Path) -> None:
    d = pages.driver
    d.get(stack.base_url + "/ui")
    key = _by_id(d, "key-input")
    pages.shot("key")
    key.send_keys(stack.api_key)
    d.find_element(By.ID, "key-submit").click()
    assert "mk-" not in d.current_url and stack.api_key not in d.current_url
    assert d.execute_script("return sessionStorage.getItem('mnemo.apiKey')") == stack.api_key

    # ---- create an agent ----
    _by_id(d, "create-form")
    _by_id(d, "create-name").send_keys("console-e2e")
    for select_id in ("create-persona", "create-human", "create-model"):
        options = Select(d.find_element(By.ID, select_id)).options
        assert len(options) >= 2, (select_id, [o.text for o in options])  # the libraries and the models
        Select(d.find_element(By.ID, select_id)).select_by_index(1)
    Select(d.find_element(By.ID, "create-model")).select_by_value(scripted_llm.model)
    _by_id(d, "create-window").send_keys("16384")
    pages.shot("agents")
    d.find_element(By.ID, "create-submit").click()
    wait_for(d, lambda d: "/chat" in d.current_url, "the new agent's chat")
    agent_id = d.current_url.split("#/agents/")[1].split("/")[0]
    agent = _api(stack, f"/v1/agents/{agent_id}").json()
    assert agent["name"] == "console-e2e" and agent["context_window"] == 16384
    assert agent["model"] == scripted_llm.model

    # ---- chat: a function call, then the reply, streamed ----
    scripted_llm.push(
        {"content": "Let me check what I know about chess.",
         "tool_call": {"name": "conversation_search", "arguments": {"query": "chess", "request_heartbeat": True}}},
        {"tool_call": {"name": "send_message", "arguments": {"message": "Nice to meet you, Ada!"}}})
    box = _by_id(d, "chat-input")
    box.send_keys("Hi, I am Ada and I love chess." + Keys.ENTER)   # the keyboard sends
    wait_for(d, lambda d: "Nice to meet you, Ada!" in _texts(d, ".msg.agent p"), "the reply")
    assert "conversation_search" in _texts(d, ".event.call .fname")
    assert "Let me check what I know about chess." in _texts(d, ".event.thought em")
    assert "Hi, I am Ada and I love chess." in _texts(d, ".msg.user p")
    pages.shot("chat")

    # ---- memory: edit a block, upload a document ----
    d.find_element(By.ID, "tab-memory").click()
    block = _by_id(d, "block-human")
    block.clear()
    block.send_keys("Name: Ada. Loves chess.")
    d.find_element(By.ID, "save-human").click()
    wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, "form.block[data-label=human]").get_attribute("data-saved"),
             "the block saved")
    assert _api(stack, f"/v1/agents/{agent_id}/memory/human").json()["value"] == "Name: Ada. Loves chess."
    doc = tmp_path / "openings.md"
    doc.write_text("# Chess openings\n\n" + "\n\n".join(
        f"Opening {i}: the Sicilian defence variation number {i} starts with e4 c5." for i in range(400)))
    d.find_element(By.ID, "doc-file").send_keys(str(doc))
    d.find_element(By.ID, "doc-upload").click()
    wait_for(d, lambda d: d.find_element(By.ID, "doc-percent").text.startswith("100 %"), "the upload at 100 %",
             timeout=120)
    assert d.find_element(By.ID, "doc-progress").get_attribute("value") == "100"
    pages.shot("memory")

    # ---- the context bar adds up to what the API reports ----
    d.find_element(By.ID, "tab-context").click()
    _by_id(d, "context-bar")
    api_ctx = _api(stack, f"/v1/agents/{agent_id}/context").json()
    rows = d.find_elements(By.CSS_SELECTOR, "#context-legend tbody tr")
    shown = {r.get_attribute("data-section"): int(r.get_attribute("data-tokens")) for r in rows}
    assert list(shown) == [s["name"] for s in api_ctx["sections"]]
    assert sum(shown.values()) == api_ctx["total_tokens"] == int(
        d.find_element(By.ID, "context-total").get_attribute("data-tokens"))
    assert shown["reserved_completion"] > 0 and shown["message_queue"] > 0 and shown["core_memory"] > 0
    assert sum(v for k, v in shown.items() if k != "reserved_completion") == api_ctx["prompt_tokens"]
    assert len(d.find_elements(By.CSS_SELECTOR, "#context-bar .line")) == 2
    pages.shot("context")

    # ---- the turn timeline ----
    d.find_element(By.ID, "tab-timeline").click()
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".turn-timeline tbody tr"), "the timeline")
    steps = d.find_elements(By.CSS_SELECTOR, ".turn-timeline tbody tr")
    assert len(steps) == 2   # the search, then the reply
    assert "conversation_search" in steps[0].text and "heartbeat" in steps[0].text
    assert "end_turn" in steps[1].text
    pages.shot("timeline")

    # ---- usage over time ----
    d.find_element(By.ID, "tab-usage").click()
    _by_id(d, "usage-chart")
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#usage-totals tbody tr td.num"), "usage totals")
    assert d.find_elements(By.CSS_SELECTOR, "#usage-chart rect.u-prompt")
    pages.shot("usage")

    # ---- a reload in the middle of a turn: the events resume after the last one seen ----
    d.find_element(By.ID, "tab-chat").click()
    wait_for(d, lambda d: "Nice to meet you, Ada!" in _texts(d, ".msg.agent p"), "the history")  # from the API
    assert "Hi, I am Ada and I love chess." in _texts(d, ".msg.user p")
    calls_before = len(_texts(d, ".event.call"))
    scripted_llm.push(
        {"tool_call": {"name": "conversation_search", "arguments": {"query": "openings", "request_heartbeat": True}}},
        {"delay": SLOW_STEP, "tool_call": {"name": "send_message", "arguments": {"message": "Back after the reload."}}})
    _by_id(d, "chat-input").send_keys("Which openings do you know?" + Keys.ENTER)
    wait_for(d, lambda d: len(_texts(d, ".event.call")) > calls_before, "the slow turn's first step")
    assert "Back after the reload." not in _texts(d, ".msg.agent p")
    d.refresh()
    wait_for(d, lambda d: "Back after the reload." in _texts(d, ".msg.agent p"), "the reply after the reload",
             timeout=SLOW_STEP + 60)
    resumed_after = int(d.find_element(By.ID, "chat-status").get_attribute("data-resumed-after") or 0)
    assert resumed_after > 0, "the reply came through the resumed stream"
    seqs = [e.get_attribute("data-seq") for e in d.find_elements(By.CSS_SELECTOR, "#chat-log [data-seq]")]
    assert len(seqs) == len(set(seqs)), "no event shown twice"
    assert "Which openings do you know?" in _texts(d, ".msg.user p")
    assert len(_texts(d, ".event.call")) == calls_before + 1
    pages.shot("chat-after-reload")
    assert pages.count >= 8
