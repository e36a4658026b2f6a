"""Every page of the web service in a real headless Chromium, as a user sees it.

Each page is opened at 1280x800 and at a phone's 390x844, screenshotted (tests/web/screenshots or
$VOICEPLAT_SCREENSHOTS), and must load without a console error and without a horizontal scroll at
phone width. Then what a user does: find the seeded calls, narrow them with the filters, page
through them, read a call (transcript, what the caller heard of a cut answer, the latency waterfall,
the pipeline log with its error highlighted), play its recording, watch a call start on the live
page without reloading it, and be refused without the token.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tests.web import seed
from tests.web.conftest import (
    AUDIO_READY_JS,
    DESKTOP,
    PHONE,
    VIEWPORTS,
    PageMaker,
    WebService,
    screenshot,
)
from voiceplat.storage.records import (
    CallFinished,
    CallOpened,
    CallRecord,
    CallSnapshot,
    TurnRecord,
    TurnWritten,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

PlaywrightError = pytest.importorskip("playwright.sync_api").Error

PAGES = {
    "calls": "/calls",
    "call": f"/calls/{seed.RECEPTION}",
    "robots": "/robots",
    "live": "/live",
    "talk-pick": "/talk",
}

OVERFLOW_JS = """() => {
  const width = window.innerWidth;
  if (document.documentElement.scrollWidth <= width) return [];
  // What sticks out, for the failure message.
  return [...document.querySelectorAll("body *")]
    .filter(el => el.getBoundingClientRect().right > width + 1)
    .slice(0, 8)
    .map(el => `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}` +
               `${el.className && typeof el.className === "string" ? "." + el.className : ""}` +
               ` right=${Math.round(el.getBoundingClientRect().right)}`);
}"""


def open_ok(page: Page, url: str) -> Response:
    response = page.goto(url)
    assert response is not None, url
    assert response.status == 200, f"{url}: {response.status} {response.text()[:300]}"
    return response


def overflow(page: Page) -> list[str]:
    """Elements wider than the window (empty: no horizontal scroll)."""
    result: list[str] = page.evaluate(OVERFLOW_JS)
    return result


def listed_calls(page: Page) -> list[str]:
    """The call ids the calls list links to, in order."""
    hrefs: list[str] = page.eval_on_selector_all(
        "main a[href^='/calls/']", "links => links.map(a => a.getAttribute('href'))"
    )
    ids = []
    for href in hrefs:
        call_id = href.removeprefix("/calls/").split("?")[0].split("/")[0]
        if call_id and call_id not in ids:
            ids.append(call_id)
    return ids


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_at_desktop_and_phone_width(
    web: WebService, new_page: PageMaker, name: str, viewport: str
) -> None:
    page = new_page(viewport=VIEWPORTS[viewport])
    open_ok(page, web.url + PAGES[name])
    page.wait_for_load_state("load")
    assert page.locator("h1").first.is_visible()
    screenshot(page, f"{name}-{viewport}")
    assert new_page.errors(page) == []
    if viewport == "phone":
        assert overflow(page) == [], f"{name} scrolls sideways at {PHONE['width']} px"


def test_root_redirects_to_the_calls_list(web: WebService, new_page: PageMaker) -> None:
    page = new_page()
    open_ok(page, web.url + "/")
    assert page.url == web.url + "/calls"


def test_calls_list_shows_every_seeded_call(web: WebService, new_page: PageMaker) -> None:
    page = new_page()
    open_ok(page, web.url + "/calls?per_page=50")
    assert sorted(listed_calls(page)) == sorted(seed.ALL_CALLS)
    main = page.inner_text("main")
    assert "+79161234567" in main  # the reception call's caller
    assert seed.RECEPTION in listed_calls(page)[:3]  # newest first: today's before January's


def submit_filters(page: Page, values: dict[str, str]) -> None:
    """Sets the filter form's fields as a user would (choose or type; "" clears) and submits it."""
    form = page.locator("form.filters")
    for name, value in values.items():
        field = form.locator(f"[name={name}]")
        if field.evaluate("el => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    with page.expect_navigation():
        form.locator("[type=submit]").first.click()


FILTER_CASES = [
    ({"robot": "clinic_fake"}, [seed.BOOKING, seed.FAILED]),
    ({"text": "воскресенье"}, [seed.RECEPTION]),  # a word of the second question
    ({"end_reason": "no_input"}, seed.FILLERS),
    ({"date_from": "2026-01-15", "date_to": "2026-01-15"}, seed.FILLERS),
    ({"caller": "74951112233"}, [seed.BOOKING]),
    ({"status": "failed"}, [seed.FAILED]),
    ({"min_duration_s": "30"}, [seed.BOOKING]),
    ({"robot": "echo", "text": "регистратура"}, [seed.RECEPTION]),
]


def test_filters_narrow_the_list(web: WebService, new_page: PageMaker) -> None:
    page = new_page()
    open_ok(page, web.url + "/calls")
    previous: dict[str, str] = {}
    for filters, expected in FILTER_CASES:
        submit_filters(page, {**dict.fromkeys(previous, ""), **filters})
        assert sorted(listed_calls(page)) == sorted(expected), filters
        for name, value in filters.items():  # the form shows what was asked
            assert page.locator(f"form.filters [name={name}]").input_value() == value
        previous = filters
    screenshot(page, "calls-filtered-desktop")
    assert new_page.errors(page) == []


def test_bad_date_range_is_explained_on_the_page(web: WebService, new_page: PageMaker) -> None:
    page = new_page()
    response = page.goto(web.url + "/calls?date_from=2026-02-01&date_to=2026-01-01")
    assert response is not None and response.status in (200, 422)
    assert "before date_from" in page.inner_text("body")


def test_pagination_walks_through_every_call_once(web: WebService, new_page: PageMaker) -> None:
    page = new_page(viewport=PHONE)
    open_ok(page, web.url + "/calls?per_page=5")
    seen: list[str] = []
    for _ in range(len(seed.ALL_CALLS)):
        ids = listed_calls(page)
        assert 0 < len(ids) <= 5
        seen += ids
        following = page.locator(".pager a[rel=next]")
        if following.count() == 0:
            break
        with page.expect_navigation():
            following.first.click()
    assert sorted(seen) == sorted(seed.ALL_CALLS)
    assert "page=3" in page.url


def test_call_page_shows_transcript_heard_text_waterfall_and_errors(
    web: WebService, new_page: PageMaker
) -> None:
    page = new_page()
    open_ok(page, f"{web.url}/calls/{seed.RECEPTION}")
    main = page.inner_text("main")
    for text in (seed.QUESTION, seed.ANSWER, seed.SECOND_QUESTION, seed.SECOND_ANSWER):
        assert text in main
    cut = page.locator("#turn-1")
    assert cut.locator(".heard").inner_text() == seed.HEARD  # what the caller heard of it
    assert cut.locator(".unheard").inner_text().strip() == seed.ANSWER[len(seed.HEARD) :].strip()
    assert "interrupted" in cut.inner_text()
    # the waterfall: the stages of each answer the record has
    waterfall = page.locator("#waterfall")
    assert waterfall.locator(".fall").count() == 2
    first = waterfall.locator(".fall").first.inner_text()
    for stage in ("endpoint silence", "ASR", "LLM first token", "first clause", "TTS first audio"):
        assert stage in first
    assert "v2v" in first and f"{seed.RECEPTION_V2V[1]:.0f} ms" in first
    # the pipeline log, its error in the error colour
    error = page.locator(".error", has_text=seed.TTS_ERROR).first
    assert error.is_visible()
    assert error.evaluate("el => getComputedStyle(el).color") == "rgb(192, 57, 43)"
    assert new_page.errors(page) == []


# How many text lines each row of a table takes: its height over one line's (its first cell's).
ROW_LINES_JS = """rows => rows.map(row => {
  const line = row.querySelector("td").getBoundingClientRect().height;
  const style = getComputedStyle(row);
  const inner = row.getBoundingClientRect().height - parseFloat(style.paddingTop)
    - parseFloat(style.paddingBottom);
  return Math.round(inner / line);
})"""


def test_phone_rows_are_compact(web: WebService, new_page: PageMaker) -> None:
    page = new_page(viewport=PHONE)
    open_ok(page, web.url + "/calls")
    # a call: time, robot, duration; then caller, end reason, turns (and outcome when it fits)
    lines = page.eval_on_selector_all("#calls-table tr.call-row", ROW_LINES_JS)
    assert len(lines) == len(seed.ALL_CALLS) and max(lines) <= 3 and min(lines) == 2, lines
    first = page.locator("#calls-table tr.call-row").last.inner_text()  # a January filler
    assert "Robot:" not in first and "1 turn" in first
    # the pipeline log: "+s event" on one line, the data (when there is any) under it
    open_ok(page, f"{web.url}/calls/{seed.RECEPTION}")
    lines = page.eval_on_selector_all("table.log tbody tr", ROW_LINES_JS)
    empty = page.eval_on_selector_all(
        "table.log tbody tr", "rows => rows.map(row => row.querySelector('td.data code') === null)"
    )
    assert lines and all(n == 1 for n, no_data in zip(lines, empty, strict=True) if no_data), lines
    assert "{}" not in page.locator("table.log").inner_text()
    assert "Event:" not in page.locator("table.log").inner_text()


def test_failed_call_shows_its_error(web: WebService, new_page: PageMaker) -> None:
    page = new_page(viewport=PHONE)
    open_ok(page, f"{web.url}/calls/{seed.FAILED}")
    assert page.locator(".error", has_text=seed.LLM_ERROR).first.is_visible()
    screenshot(page, "call-failed-phone")


def test_unknown_call_is_a_404_page(web: WebService, new_page: PageMaker) -> None:
    page = new_page()
    response = page.goto(f"{web.url}/calls/no-such-call")
    assert response is not None and response.status == 404
    assert "no-such-call" in page.inner_text("body")


def wait_for_playing_past(page: Page, seconds: float) -> float:
    page.wait_for_function(f"() => document.querySelector('audio#player').currentTime > {seconds}")
    current: float = page.evaluate("() => document.querySelector('audio#player').currentTime")
    return current


def test_recording_plays_and_turn_marks_seek(web: WebService, new_page: PageMaker) -> None:
    assert web.seeded is not None and web.seeded.recording_in_record
    page = new_page()
    open_ok(page, f"{web.url}/calls/{seed.RECEPTION}")
    duration = page.evaluate(AUDIO_READY_JS)
    assert duration == pytest.approx(seed.RECORDING_S, abs=0.05)
    # muted: a page may play muted audio without a user gesture
    page.evaluate(
        "() => { const a = document.querySelector('audio#player'); a.muted = true; a.play(); }"
    )
    assert wait_for_playing_past(page, 0.2) > 0.2
    page.evaluate("() => document.querySelector('audio#player').pause()")
    # a mark on the timeline for the last answer: clicking it plays from there
    _role, _text, start, _end = seed.RECEPTION_TURNS[3]
    page.locator("#turn-3 button.seek").click()
    assert wait_for_playing_past(page, start - 0.1) == pytest.approx(start, abs=0.5)
    # and the marks on the player's timeline: the cut answer's mark jumps back to it
    page.evaluate("() => document.querySelector('audio#player').pause()")
    _role, _text, cut_start, _end = seed.RECEPTION_TURNS[1]
    page.locator("#timeline .mark").nth(1).click()
    page.wait_for_function(
        f"() => Math.abs(document.querySelector('audio#player').currentTime - {cut_start}) < 0.5"
    )
    screenshot(page, "call-playing")
    assert new_page.errors(page) == []


def test_live_page_shows_a_call_that_starts_after_it_loaded(
    web: WebService, new_page: PageMaker
) -> None:
    page = new_page(viewport=PHONE)
    open_ok(page, web.url + "/live")
    page.wait_for_function(
        "() => document.getElementById('live-state').textContent === 'connected'"
    )
    assert page.locator("#live-empty").is_visible()
    assert page.locator("#live-events-empty").is_visible()  # "No events yet", not an empty card
    now = datetime.now(UTC)
    call = CallRecord(
        call_id="live-call-1", robot="echo", mode="pipeline", source="web", caller="+70001112233",
        started_at=now,
    )  # fmt: skip
    web.feed(CallOpened(call))
    turn = TurnRecord(call_id=call.call_id, idx=0, role="user", text="Это звонок в прямом эфире")
    web.feed(TurnWritten(call, turn))
    row = page.locator("tr[data-call='live-call-1']")
    row.filter(has_text="Это звонок в прямом эфире").wait_for()
    assert "+70001112233" in row.inner_text()
    assert page.locator("#live-empty").is_hidden()
    assert page.locator("#live-events li").count() >= 1
    assert page.locator("#live-events-empty").is_hidden()
    screenshot(page, "live-call-phone")
    ended = call.model_copy(
        update={
            "status": "completed",
            "ended_at": now + timedelta(seconds=3),
            "end_reason": "caller_hangup",
        }
    )
    web.feed(CallFinished(CallSnapshot(call=ended, turns=[turn])))
    row.wait_for(state="detached")
    assert page.locator("#live-empty").is_visible()
    assert new_page.errors(page) == []


def test_wrong_or_missing_token_is_refused_and_the_right_one_works(
    web_with_token: WebService, new_page: PageMaker
) -> None:
    url = f"{web_with_token.url}/calls"
    # no token: 401 with the login prompt's challenge; dismissing the prompt ends the navigation
    page = new_page()
    with page.expect_response(url) as refused, pytest.raises(PlaywrightError, match="AUTH"):
        page.goto(url)
    assert refused.value.status == 401
    assert refused.value.headers["www-authenticate"] == 'Basic realm="voiceplat"'
    # a wrong password typed into the prompt: 401 again, and the page says what is wanted
    page = new_page(http_credentials={"username": "voiceplat", "password": "not-the-token"})
    response = page.goto(url)
    assert response is not None and response.status == 401
    assert "needs its token" in page.inner_text("body")
    assert seed.RECEPTION not in page.content()
    # the recording itself asks for the token too
    recording = page.request.get(f"{web_with_token.url}/api/calls/{seed.RECEPTION}/recording")
    assert recording.status == 401
    page = new_page(http_credentials=web_with_token.credentials())
    open_ok(page, url)
    assert seed.RECEPTION in listed_calls(page)
    # the recording (an <audio> request of its own) passes with the same credentials
    open_ok(page, f"{web_with_token.url}/calls/{seed.RECEPTION}")
    duration = page.evaluate(AUDIO_READY_JS)
    assert duration == pytest.approx(seed.RECORDING_S, abs=0.05)


def test_api_docs_work_offline(web: WebService, new_page: PageMaker) -> None:
    """/docs is Swagger UI from the vendored files: no CDN, so it works with no internet."""
    page = new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_ok(page, web.url + "/docs")
    page.get_by_text("/api/calls/{call_id}/recording").first.wait_for()
    assert [url for url in requested if not url.startswith(web.url)] == []
    assert new_page.errors(page) == []


def test_robots_page_shows_each_robot_with_its_statistics(
    web: WebService, new_page: PageMaker
) -> None:
    page = new_page(viewport=DESKTOP)
    open_ok(page, web.url + "/robots")
    echo = page.locator("section[data-robot='echo']")
    clinic = page.locator("section[data-robot='clinic_fake']")
    assert "check OK" in echo.inner_text()
    assert echo.locator(".calls-today").inner_text() == "1"  # the fillers are from January
    assert clinic.locator(".calls-today").inner_text() == "2"
    assert "no_input" in echo.locator(".end-reasons").inner_text()
    # ws_host 0.0.0.0 is no address to call: the page says so and gives the one from here
    port = echo.locator("td.port").inner_text()
    assert "any address, port 5299" in port and "ws://127.0.0.1:5299/" in port, port
    page.wait_for_selector("section[data-robot='echo'] canvas.v2v-chart[data-drawn='1']")
    assert new_page.errors(page) == []
