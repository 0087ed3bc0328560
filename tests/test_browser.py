"""Real-browser tests: Debian's Chromium driven by Playwright against a running app.

Screenshots land in artifacts/. Set LIBRA_REQUIRE_BROWSER=1 (CI does) to fail
rather than skip when Chromium is missing.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import unquote
from pathlib import Path

import pytest

from libra import accounts
from traces.annotation import queues
from libra.demo import build_demo
from libra.web.timeline import PAGE_STEPS
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Run, Step, StepKind
from traces.queries import RunFilter
from traces.store import Store
from conftest import fresh_location  # noqa: I001 - the suite's own helpers

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]
EVIL = '<script>alert("x")</script> **bold** <img src=x onerror=alert(2)>'
# Markdown that Streamlit would draw if a label took it as such: a live link, an image that loads
# from elsewhere (a beacon), bold text forging a system line, a colour directive.
BEACON = "http://127.0.0.2:9/beacon.png"
LABEL_EVIL = f"**SYSTEM · approved by admin** [click](http://evil.invalid/x) ![b]({BEACON}) :red[alarm]"
# An agent's name as a hostile producer writes it: HTML that would load the beacon, a
# javascript: link, a right-to-left override that reverses what follows, and a token too long to wrap.
AGENT_EVIL = f"<img src={BEACON}> [x](javascript:alert(1)) \u202etxt.exe " + "W" * 400
ROOT = Path(__file__).resolve().parents[1]
LONG_STEPS, LONG_ERROR = 130, 121  # more steps than a page of the timeline holds; a failure on its last page

if not Path(CHROMIUM).exists():
    if os.environ.get("LIBRA_REQUIRE_BROWSER"):
        raise RuntimeError(f"{CHROMIUM} is required (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(request, module_backend, tmp_path_factory):
    db = fresh_location(request, module_backend, tmp_path_factory.mktemp("browser"), "browser")
    s = Store(db)
    build_demo(s, n=40)
    w = BatchWriter(s, IngestSummary())
    w.add_run(Run(native_id="evil-1", format="libra", source="test", agent=AGENT_EVIL, task="xss",
                  steps=(Step(kind=StepKind.USER, content=EVIL, actor=LABEL_EVIL),
                         Step(kind=StepKind.TOOL_CALL, tool_name=LABEL_EVIL, content="x", is_error=True),
                         # a model's name is drawn inside the step's styled timing line
                         Step(kind=StepKind.AGENT, content="done", metadata={"llm_call": {"response_model": LABEL_EVIL}},
                              input_tokens=12)),
                  globally_unique_id=True))
    # a run longer than a page of the timeline, failing late: its evidence step is pages away
    w.add_run(Run(native_id="long-1", format="libra", source="test", agent="long-runner@v1", task="many steps",
                  steps=tuple(Step(kind=StepKind.TOOL_RESULT if i == LONG_ERROR else
                                   (StepKind.AGENT, StepKind.TOOL_CALL)[i % 2],
                                   content="Error: invalid date format, expected YYYY-MM-DD" if i == LONG_ERROR
                                   else f"step {i}: reading the timetable", is_error=i == LONG_ERROR)
                              for i in range(LONG_STEPS)),
                  globally_unique_id=True))
    w.flush()
    from metrics import sets
    from metrics.definitions import Metric, MetricSet

    sets.save(s, MetricSet("evil-set", 0, LABEL_EVIL, (Metric("m1", LABEL_EVIL, "explained"),)))
    for name, role in (("alice", "annotator"), ("bao", "annotator"), ("root", "admin")):
        accounts.add_user(s, name, "browser-pass", role)
    qid = queues.create(s, "travel", "root", k=2, flt=RunFilter(agents=("travel-concierge@v2",)))
    from metrics.jobs import alerts
    from pipa.judge import PipaJudge
    from pipa.scoring import score_pipa

    score_pipa(s, PipaJudge())
    # a scored set for the dashboards' charts, judged the quick offline way
    from metrics.definitions import Example
    from metrics.embeddings import default_embedder
    from metrics.judges.similarity import SimilarityJudge
    from metrics.scoring import score_runs

    dash = sets.save(s, MetricSet("dash", 0, "Dashboard metrics", (
        Metric("recovery", "Tool error recovery", "Recovers from failing tool calls.",
               good=(Example("fixed the arguments after the error and the retry worked"),),
               bad=(Example("Error: invalid date format, expected YYYY-MM-DD"),)),
        Metric("confirm", "Confirmation", "Asks before booking.",
               good=(Example("Shall I book it?"),), bad=(Example("booked without asking"),)))))
    score_runs(s, dash, SimilarityJudge(default_embedder(s)))
    alerts.check(s, [alerts.AlertRule(name="tool errors", metric="pipa_tool_efficiency", below=0.95,
                                      window_hours=None, min_runs=5)])
    proc, url = _start_app(db)
    yield {"url": url, "store": s, "queue": qid}
    proc.terminate()
    proc.wait(timeout=20)


def _start_app(db: str):
    port = free_port()
    env = {**os.environ, "LIBRA_STORE": db}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("the app did not start")
    return proc, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def sign_in(page, url: str, user: str, path: str = "") -> None:
    """Open `path` signed in as `user`; a page whose cookie already signs `user` in needs no form."""
    page.goto(url + path)
    form, already = page.get_by_role("textbox", name="Username"), page.get_by_text(f"signed in as {user}")
    form.or_(already).first.wait_for(timeout=30_000)
    if already.count():
        return
    form.fill(user)
    page.get_by_role("textbox", name="Password").fill("browser-pass")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"signed in as {user}").wait_for(timeout=30_000)


def open_option(page, box, text: str):
    """The first option of select `box` holding `text`, its list open.

    A rerun that lands just after the click (the sign-in's, a lake's slower first read) redraws the
    select and closes its list, so the click is repeated until the option shows, within 30 s."""
    from playwright.sync_api import TimeoutError as Timeout

    option = page.get_by_role("option").filter(has_text=text).first
    for _ in range(10):
        box.click()
        try:
            option.wait_for(timeout=3_000)
            return option
        except Timeout:  # the list closed under us: open it again
            page.keyboard.press("Escape")
    option.wait_for(timeout=1)  # raises with playwright's own account of what it waited for
    return option


def test_annotate_a_step_save_reload_and_see_it(app_url, browser, artifacts):
    url, s = app_url["url"], app_url["store"]
    run_id = s.scalar("SELECT run_id FROM runs WHERE agent = 'support-desk@v3' ORDER BY run_id LIMIT 1")
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    sign_in(page, url, "alice", f"/run?run_id={run_id}")
    page.get_by_text(f"Run {run_id}").wait_for(timeout=30_000)
    steps = page.get_by_test_id("stMultiSelect").filter(has_text="About which steps?")
    steps.locator("input").click()
    page.get_by_role("option").filter(has_text="2. TOOL CALL").click()
    page.keyboard.press("Escape")
    # a step's head is its anchor button: a click anchors the note there too, and says so on the head
    page.locator(".st-key-anchor-3 button").click()
    page.locator(".st-key-anchor-3").get_by_text("anchored to your note").wait_for(timeout=30_000)
    assert steps.get_by_text("3. ").count() == 1  # the form lists it beside step 2
    note = "Browser check: refunded without asking the customer first."
    page.get_by_label("What did the agent do well or badly?").fill(note)
    page.get_by_role("button", name="Save feedback").click()
    page.get_by_text("Saved.").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "browser-saved.png"), full_page=True)
    page.reload()  # the session survives it: no second sign-in
    page.get_by_text("signed in as alice").wait_for(timeout=30_000)
    page.get_by_text(note).first.wait_for(timeout=30_000)
    page.get_by_text(re.compile(r"alice on steps 2, 3 · \d{4}-\d\d-\d\d \d\d:\d\d UTC")).first.wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "browser-after-reload.png"), full_page=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not s.scalar("SELECT count(*) FROM feedback WHERE text = ?", [note]):
        time.sleep(0.5)
    assert s.execute("SELECT author, steps FROM feedback WHERE text = ?", [note]) == [("alice", [2, 3])]


def test_a_session_survives_a_reload_and_a_pasted_link_until_signed_out_or_the_role_changes(
        app_url, browser, artifacts):
    url, s = app_url["url"], app_url["store"]
    ctx = browser.new_context(viewport={"width": 1300, "height": 900})
    page = ctx.new_page()
    sign_in(page, url, "bao", "/metrics")
    page.wait_for_function("document.cookie.includes('libra_session=')", timeout=20_000)
    cookies = [c for c in ctx.cookies() if c["name"] == "libra_session"]
    # a pasted link in a new tab of the same browser: signed in, on the page it names
    other = ctx.new_page()
    other.goto(url + "/dashboards")
    other.get_by_text("signed in as bao").wait_for(timeout=30_000)
    # the cookie copied into another browser works too, until the session is ended
    thief = browser.new_context()
    thief.add_cookies(cookies)
    stolen = thief.new_page()
    stolen.goto(url + "/queues")
    stolen.get_by_text("signed in as bao").wait_for(timeout=30_000)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "browser-signed-out.png"))
    stolen.reload()
    stolen.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
    assert stolen.get_by_text("signed in as bao").count() == 0
    # a role change ends the sessions the account had
    sign_in(page, url, "bao")
    accounts.set_role(s, "bao", "viewer")
    try:
        page.reload()
        page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
    finally:
        accounts.set_role(s, "bao", "annotator")
    for c in (ctx, thief):
        c.close()


def test_second_annotator_sees_queue_progress(app_url, browser, artifacts):
    url, qid = app_url["url"], app_url["queue"]
    a = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    sign_in(a, url, "alice", "/queues")
    a.get_by_role("button", name="Next run for me").click()
    a.get_by_role("button", name="Done, next run").click()
    a.get_by_text("queue: 1 done by you").wait_for(timeout=30_000)
    b = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    sign_in(b, url, "bao", "/queues")
    b.get_by_text("overall 1 of").wait_for(timeout=30_000)
    b.screenshot(path=str(artifacts / "browser-queue-second-annotator.png"), full_page=True)
    assert queues.progress(app_url["store"], qid)["done"] == 1


def test_script_and_markdown_in_a_trace_render_as_text(app_url, browser, artifacts):
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, app_url["url"], "alice", "/run?run_id=libra:evil-1")
    page.get_by_text('<script>alert("x")</script>').first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    assert dialogs == []
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("strong", has_text="bold").count() == 0
    page.screenshot(path=str(artifacts / "browser-untrusted-content.png"), full_page=True)


def test_markdown_in_labels_and_names_is_shown_as_text_and_loads_nothing(app_url, browser, artifacts):
    """Step labels (actor, tool) and metric-set and metric names are drawn by Streamlit as Markdown."""
    page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(
        (app_url["url"], "data:", "blob:", "about:")) else None)
    for user, path, seen in (("alice", "/run?run_id=libra:evil-1", "approved by admin"),
                             ("root", "/metrics", "approved by admin")):
        sign_in(page, app_url["url"], user, path)
        if path == "/metrics":
            open_option(page, page.get_by_role("combobox").first, "evil-set").click()
        page.get_by_text(seen).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)
        links = page.locator("a[href*='evil.invalid']")
        assert links.count() == 0, (path, [links.nth(i).evaluate("e => e.parentElement.outerHTML.slice(0, 300)")
                                           for i in range(links.count())])
        assert page.locator(f"img[src='{BEACON}']").count() == 0, path
        # the data's own ** made no bold of its words (Libra's bold around a whole step label is ours)
        assert page.locator("strong", has_text=re.compile(r"^SYSTEM")).count() == 0, path
        shown = page.evaluate("document.body.innerText").replace("\u2060", "")  # the joiner that stops autolinks
        assert "[click](http://evil.invalid/x)" in shown and ":red[alarm]" in shown, path  # shown as written
        # and no directive of the data's coloured anything, also inside the timing line's own grey
        assert page.locator(".stMarkdownColoredText").filter(has_text=re.compile(r"^alarm$")).count() == 0, path
        if path.startswith("/run"):  # as written inside our own colours: the model's name in the grey
            # timing line, the failed step's tool name in its red head
            coloured = page.locator(".stMarkdownColoredText", has_text=":red[alarm]")
            assert coloured.count() == 2
            assert coloured.filter(has_text="error").first.inner_text().startswith("1. TOOL CALL · **SYSTEM")
        page.screenshot(path=str(artifacts / f"browser-markdown-as-text{path.split('?')[0].replace('/', '-')}.png"),
                        full_page=True)
        page.context.clear_cookies()
    assert elsewhere == []  # no request left the app's own address


def test_a_hostile_agent_name_is_text_in_filters_tables_and_chart_tooltips(app_url, browser, artifacts):
    """The Runs page's filters and table and the dashboards' charts, tooltips included."""
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    elsewhere = []
    page.on("request", lambda r: elsewhere.append(r.url) if not r.url.startswith(
        (app_url["url"], "data:", "blob:", "about:")) else None)
    sign_in(page, app_url["url"], "alice")  # the Runs page is the default, at /
    page.get_by_text("runs match").first.wait_for(timeout=30_000)
    label = open_option(page, page.get_by_role("combobox").nth(1), "txt.exe").inner_text()  # the agent filter
    assert "\u202e" not in label and "⟨U+202E⟩txt.exe" in label, label
    assert "<img src=" in label, "the HTML is shown as written"
    page.keyboard.press("Escape")
    page.screenshot(path=str(artifacts / "browser-hostile-agent-runs.png"), full_page=True)
    sign_in(page, app_url["url"], "alice", "/dashboards")  # a new page load; the cookie keeps the sign-in
    page.get_by_text("Alert tool errors").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="PIPA profile").click()
    charts = page.get_by_role("tabpanel", name="PIPA profile").locator(".vega-embed")
    charts.first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    tips = 0
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        if not box:
            continue
        for fx in (0.2, 0.35, 0.5, 0.65, 0.8):
            for fy in (0.2, 0.4, 0.6, 0.8):
                page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                page.wait_for_timeout(60)
                tip = page.locator("#vg-tooltip-element.visible")
                if tip.count():
                    tips += 1
                    assert tip.locator("img, a, script").count() == 0, tip.inner_html()[:300]
    page.screenshot(path=str(artifacts / "browser-hostile-agent-dashboards.png"), full_page=True)
    assert tips > 0, "no chart showed a tooltip: the check above saw nothing"
    assert page.locator(f"img[src='{BEACON}']").count() == 0
    assert elsewhere == [], elsewhere


def test_dashboards_draw_the_pipa_profile_and_the_alert(app_url, browser, artifacts):
    page = browser.new_context(viewport={"width": 1400, "height": 1100}).new_page()
    sign_in(page, app_url["url"], "alice", "/dashboards")
    page.get_by_text("Alert tool errors").first.wait_for(timeout=30_000)
    page.get_by_role("tab", name="PIPA profile").click()
    chart = page.locator(".vega-embed >> visible=true").first
    chart.wait_for(timeout=30_000)
    page.get_by_text("Where each agent fails first").wait_for(timeout=10_000)
    box = chart.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 100  # drawn, not an empty placeholder
    page.screenshot(path=str(artifacts / "browser-dashboards-pipa.png"), full_page=True)


def test_keys_move_between_steps_anchor_a_note_save_it_and_work_a_queue(app_url, browser, artifacts):
    """j/k, a, Ctrl+Enter, n and s press the page's own buttons: the note lands anchored, the queue moves."""
    url, s, qid = app_url["url"], app_url["store"], app_url["queue"]
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    sign_in(page, url, "bao", "/queues")
    page.wait_for_function("() => window.__libraKeys === true", timeout=30_000)  # on any page, from the sidebar
    page.evaluate("document.querySelectorAll('iframe').forEach(f => { f.dataset.kept = 'yes'; })")
    page.get_by_role("button", name="Next run for me").click()
    page.get_by_role("button", name="Done, next run").wait_for(timeout=30_000)
    first = re.search(r"run_id=([^&]+)", page.url).group(1)
    page.locator(".st-key-step-0").wait_for(timeout=30_000)
    page.wait_for_function("() => window.__libraKeys === true", timeout=30_000)  # the keys are listened for
    # the frame that runs the keys' script (and the cookie's, after a sign-in) takes no room on the
    # page: it was 150 pixels high, a blank band above the run's title
    frames = page.evaluate("Array.from(document.querySelectorAll('iframe'), f => f.getBoundingClientRect().height)")
    assert frames and all(h <= 1 for h in frames), frames
    # and the keys' frame is the one the queue page had: going to the run made no new frame
    assert page.locator("iframe[data-kept='yes']").count() >= 1
    page.get_by_role("heading", name="Timeline").click()  # the page, not a text box, has the focus
    for _ in range(3):
        page.keyboard.press("j")
        page.wait_for_timeout(300)
    page.keyboard.press("a")
    anchored = page.get_by_text("anchored to your note")
    anchored.wait_for(timeout=30_000)
    step = int(re.search(r"st-key-step-(\d+)", page.locator("[class*='st-key-step-']").filter(
        has=anchored).first.get_attribute("class")).group(1))
    assert step >= 1  # j moved down from the first step before a anchored
    note = "Keyboard check: anchored with a, saved with Ctrl+Enter."
    page.get_by_label("What did the agent do well or badly?").fill(note)
    page.keyboard.press("Control+Enter")
    page.get_by_text("Saved.").wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "browser-keyboard-saved.png"), full_page=True)
    from traces.annotation import feedback

    feedback.flush(s)
    assert s.execute("SELECT steps FROM feedback WHERE text = ?", [note]) == [([step],)]
    page.get_by_role("heading", name="Timeline").click()
    page.keyboard.press("n")
    page.wait_for_url(lambda u: "run_id=" in u and first not in u, timeout=30_000)
    second = re.search(r"run_id=([^&]+)", page.url).group(1)
    page.get_by_text(re.compile(r"queue: 1 done by you")).wait_for(timeout=30_000)
    page.get_by_role("heading", name="Timeline").click()
    page.keyboard.press("s")
    page.wait_for_url(lambda u: second not in u, timeout=30_000)
    status = dict(s.execute("SELECT run_id, status FROM queue_assignments WHERE queue_id = ? AND username = 'bao'",
                            [qid]))
    assert status[unquote(first)] == "done" and status[unquote(second)] == "skipped"


def test_every_dashboard_chart_draws_with_readable_labels(app_url, browser, artifacts):
    """Each tab's charts are drawn (not an empty frame), and screenshots of each are kept to look at."""
    page = browser.new_context(viewport={"width": 1500, "height": 2400}).new_page()
    sign_in(page, app_url["url"], "alice", "/dashboards")
    for tab, least in (("Scores over time", 1), ("Runs × metrics", 1), ("PIPA profile", 1), ("People & cost", 0)):
        page.get_by_role("tab", name=tab).click()
        panel = page.get_by_role("tabpanel", name=tab)
        if least:
            panel.locator(".vega-embed").nth(least - 1).wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
        boxes = [c.bounding_box() for c in panel.locator(".vega-embed").all()]
        assert len(boxes) >= least and all(b and b["width"] > 150 and b["height"] > 80 for b in boxes)
        assert not panel.get_by_text(re.compile(r"\bNone\b|\bnan\b|e-\d\d")).count()
        page.screenshot(path=str(artifacts / f"browser-dashboard-{tab.split()[0].lower()}.png"), full_page=True)
    page.get_by_role("tab", name="PIPA profile").click()
    # a p-value far below 0.001 reads as one, not as 19 decimals
    assert not page.get_by_text(re.compile(r"0\.0000")).count()


def test_the_run_view_draws_the_trace_timeline_and_step_timings(app_url, browser, artifacts):
    url, s = app_url["url"], app_url["store"]
    run_id = s.scalar("SELECT run_id FROM runs WHERE agent = 'repo-fixer@v1' ORDER BY n_steps DESC LIMIT 1")
    page = browser.new_context(viewport={"width": 1400, "height": 1400}).new_page()
    sign_in(page, url, "alice", f"/run?run_id={run_id}")
    page.get_by_text(re.compile(r"\+\d+\.\d s · took \d+")).first.wait_for(timeout=30_000)
    # a step's head (its anchor button) is set left like a heading, not centred like a button's label
    page.wait_for_function("() => { const b = document.querySelector(\"[class*='st-key-anchor-'] button\");"
                           " return b && getComputedStyle(b).justifyContent === 'flex-start'"
                           " && getComputedStyle(b.querySelector('p')).textAlign === 'left'; }", timeout=10_000)
    page.get_by_text("trace timeline (waterfall)").click()
    chart = page.locator(".vega-embed >> visible=true").first
    chart.wait_for(timeout=30_000)
    box = chart.bounding_box()
    assert box and box["height"] > 100
    page.screenshot(path=str(artifacts / "browser-run-timeline.png"), full_page=True)


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    """The app on a store built from ../shared/data: real producers' traces and people's notes."""
    from conftest import SHARED
    from pipa.judge import PipaJudge
    from pipa.scoring import score_pipa
    from traces.ingest import ingest

    if not SHARED.is_dir():
        pytest.skip(f"shared data not present at {SHARED}")
    db = str(tmp_path_factory.mktemp("shared-app") / "shared.duckdb")
    s = Store(db)
    ingest(s, [SHARED / name for name in ("otel-genai", "inspect", "who-and-when", "sotopia-pi-human-eval")])
    score_pipa(s, PipaJudge())
    accounts.add_user(s, "root", "browser-pass", "admin")
    proc, url = _start_app(db)
    yield {"url": url, "store": s}
    proc.terminate()
    proc.wait(timeout=20)


def test_pages_on_a_store_built_from_the_shared_traces(shared_app, browser, artifacts):
    """Each page on real data: no error, nested traces drawn as a tree, names and numbers as text."""
    url, s = shared_app["url"], shared_app["store"]
    page = browser.new_context(viewport={"width": 1500, "height": 1800}).new_page()
    sign_in(page, url, "root")
    page.get_by_text(re.compile(r"[\d,]+ runs match")).wait_for(timeout=30_000)
    page.get_by_test_id("stDataFrame").first.wait_for(timeout=30_000)
    page.wait_for_timeout(2500)  # the grid draws its cells after it appears
    page.screenshot(path=str(artifacts / "browser-shared-runs.png"), full_page=True)
    otel = s.scalar("SELECT run_id FROM runs WHERE format = 'otel-spans' AND metadata LIKE '%span_outline%' "
                    "ORDER BY n_steps DESC LIMIT 1")
    assert otel is not None  # the wrapper spans of a real trace are kept
    page.goto(f"{url}/run?run_id={otel}")
    page.get_by_text(re.compile(r"^▾ ")).first.wait_for(timeout=30_000)  # a span of the tree, open
    page.locator(".vega-embed >> visible=true").first.wait_for(timeout=30_000)  # the waterfall opens for a nested trace
    page.screenshot(path=str(artifacts / "browser-shared-otel-run.png"), full_page=True)
    named = s.scalar("SELECT run_id FROM runs WHERE format = 'who-and-when' LIMIT 1")
    page.goto(f"{url}/run?run_id={named}")
    page.get_by_text(re.compile(r"who-and-when-annotator about step \d+ \(named by the source")).wait_for(
        timeout=30_000)
    page.screenshot(path=str(artifacts / "browser-shared-who-and-when-run.png"), full_page=True)
    for path, text in (("/dashboards", "Dashboards"), ("/metrics", "Metrics"), ("/queues", "Queues")):
        page.goto(url + path)
        page.get_by_role("heading", name=text).first.wait_for(timeout=30_000)
        page.wait_for_timeout(2000)
        assert not page.get_by_test_id("stException").count()
        page.screenshot(path=str(artifacts / f"browser-shared{path.replace('/', '-')}.png"), full_page=True)
    page.goto(url + "/dashboards")
    page.get_by_role("tab", name="PIPA profile").click()
    page.locator(".vega-embed >> visible=true").first.wait_for(timeout=30_000)
    assert not page.get_by_text(re.compile(r"0\.0000|\bNone\b")).count()
    page.screenshot(path=str(artifacts / "browser-shared-pipa.png"), full_page=True)


def test_a_verdicts_evidence_step_turns_the_timelines_page_and_scrolls_to_it(app_url, browser, artifacts):
    url, s = app_url["url"], app_url["store"]
    run_id, step = s.execute("SELECT run_id, evidence[-1] FROM scores WHERE metric_set_id = 'dash' AND value = -1 "
                             "AND len(evidence) > 0 ORDER BY evidence[-1] DESC, run_id LIMIT 1")[0]
    assert step >= PAGE_STEPS  # on a later page than the one the run opens at
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    sign_in(page, url, "alice", f"/run?run_id={run_id}")
    page.locator(".st-key-step-0").wait_for(timeout=30_000)
    assert page.locator(f".st-key-step-{step}").count() == 0  # not drawn: another page
    page.get_by_text(re.compile(r"^Scores \(")).click()
    link = page.get_by_role("button", name=f"step {step}", exact=True).first
    link.wait_for(timeout=30_000)
    # the run's PIPA chart in the same expander draws a moment later and moves what is below it
    page.locator(".vega-embed >> visible=true").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.wait_for_function("() => window.__libraKeys === true", timeout=30_000)
    link.click()
    at_top(page, f".st-key-step-{step}")
    box = page.locator(f".st-key-step-{step}").bounding_box()
    assert box and 0 <= box["y"] < 450  # brought to the top of the view, below the header bar
    assert page.locator(".st-key-step-0").count() == 0  # the page turned
    page.screenshot(path=str(artifacts / "browser-evidence-link.png"))


def at_top(page, selector: str, below: int = 450) -> None:
    """Wait until the block `selector` names is drawn in the view, its top no lower than `below`."""
    page.wait_for_function(f"() => {{ const e = document.querySelector('{selector}'); if (!e) return false; "
                           f"const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < {below}; }}",
                           timeout=30_000)


def test_a_long_run_is_drawn_a_page_at_a_time_and_j_k_turn_the_pages(app_url, browser, artifacts):
    url, s = app_url["url"], app_url["store"]
    run_id = s.scalar("SELECT run_id FROM runs WHERE agent = 'long-runner@v1'")
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    sign_in(page, url, "alice", f"/run?run_id={run_id}")
    last = PAGE_STEPS - 1
    page.locator(f".st-key-step-{last}").wait_for(timeout=30_000)
    assert page.locator("[class*='st-key-step-']").count() == PAGE_STEPS
    pages = -(-LONG_STEPS // PAGE_STEPS)
    page.get_by_text(f"steps 0–{last} of {LONG_STEPS} · page 1 of {pages}").first.wait_for(timeout=30_000)
    page.wait_for_function("() => window.__libraKeys === true", timeout=30_000)
    page.get_by_role("heading", name="Timeline").click()  # the page, not a text box, has the focus
    first = f".st-key-step-{PAGE_STEPS}"
    for _ in range(PAGE_STEPS + 5):  # j step by step; past the page's last step, the next page at its first
        if page.locator(first).count():
            break
        page.keyboard.press("j")
        page.wait_for_timeout(150)
    page.locator(first).wait_for(timeout=30_000)
    at_top(page, first)
    page.get_by_text(f"steps {PAGE_STEPS}–{2 * PAGE_STEPS - 1} of {LONG_STEPS}").first.wait_for(timeout=30_000)
    page.keyboard.press("k")  # before the page's first step: back a page, at its last step
    page.locator(f".st-key-step-{last}").wait_for(timeout=30_000)
    at_top(page, f".st-key-step-{last}", below=900)  # a page's last step cannot reach the top
    for n in range(2, pages + 1):
        page.get_by_role("button", name="Later steps").first.click()
        page.get_by_text(f"page {n} of {pages}").first.wait_for(timeout=30_000)
    page.locator(f".st-key-step-{LONG_STEPS - 1}").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Later steps").first.is_disabled()
    page.screenshot(path=str(artifacts / "browser-long-run-last-page.png"))
