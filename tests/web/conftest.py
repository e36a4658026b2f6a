"""Fixtures of the page tests: Debian's Chromium driven by Playwright, the web service running for
real on 127.0.0.1, screenshots.

- `browser`: one headless Chromium per session (Playwright's sync API; no browser download:
  /usr/bin/chromium). `browser_with_mic(wav)`: a Chromium whose microphone is that WAV (16-bit,
  16-48 kHz; a missing or 24-bit file gives silence without an error, so a missing one fails here).
- `new_page(browser=None, viewport=DESKTOP, http_credentials=None, extra_http_headers=None)`: a
  page in a fresh context; its
  console errors and uncaught exceptions are collected: `new_page.errors(page)`.
- `service_loop`: one asyncio loop in a thread for the session. The web service (uvicorn) runs on
  it; so may a robot (`service_loop.run(coro)`), and the LiveCalls the live page reads must be fed
  from it (`web.feed(item)`), as LiveCalls is not thread-safe.
- `web`: the service over copies of tests/fixtures/robots (echo, clinic_fake) with the calls of
  tests/web/seed.py in their logs; `start_web(robot_dirs, token=..., live=...)` starts more.
- `screenshot(page, name)`: tests/web/screenshots/<name>.png, or under $VOICEPLAT_SCREENSHOTS (CI
  keeps them as artifacts; the folder is git-ignored).

Under CI=true a missing Chromium or Playwright fails the tests (a skip fails there: ci_skips.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from tests.web.seed import Seeded, seed_calls

if TYPE_CHECKING:
    import uvicorn
    from playwright.sync_api import Browser, Page, Playwright

    from voiceplat.storage.live import LiveCalls
    from voiceplat.storage.records import RecordItem
    from voiceplat.web.context import WebContext

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_ROBOTS = ROOT / "tests" / "fixtures" / "robots"
CHROMIUM = Path(os.environ.get("VOICEPLAT_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("VOICEPLAT_SCREENSHOTS") or Path(__file__).parent / "screenshots")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}
TOKEN = "web-test-token-0123456789abcdef"
HANG_S = 60.0
"""Only a hang reaches this."""

FAKE_MIC_FLAGS = (
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)


def chromium_args(*extra: str) -> list[str]:
    args = ["--disable-dev-shm-usage", *extra]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return args


# --- the browser --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; scripts/setup.sh test)")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as driver:
        yield driver


def _launch(playwright: Playwright, *extra: str) -> Browser:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=chromium_args(*extra)
    )


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = _launch(playwright)
    yield chromium
    chromium.close()


@pytest.fixture(scope="session")
def browser_with_mic(playwright: Playwright) -> Iterator[Callable[[Path], Browser]]:
    """browser_with_mic(wav) -> a Chromium (one per WAV for the session) hearing that WAV."""
    launched: dict[Path, Browser] = {}

    def launch(wav: Path) -> Browser:
        wav = Path(wav).resolve()
        if not wav.is_file():
            raise FileNotFoundError(f"{wav}: no such WAV (Chromium would hear silence)")
        if wav not in launched:
            launched[wav] = _launch(
                playwright, *FAKE_MIC_FLAGS, f"--use-file-for-fake-audio-capture={wav}"
            )
        return launched[wav]

    yield launch
    for chromium in launched.values():
        chromium.close()


class PageMaker:
    """new_page(...) -> a Page in its own context; errors(page): its console errors so far."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._errors: dict[int, list[str]] = {}
        self._contexts: list[Any] = []

    def __call__(
        self,
        browser: Browser | None = None,
        viewport: dict[str, int] = DESKTOP,
        http_credentials: dict[str, str] | None = None,
        extra_http_headers: dict[str, str] | None = None,
    ) -> Page:
        chromium: Browser = browser or self._request.getfixturevalue("browser")
        context = chromium.new_context(
            viewport=viewport,  # type: ignore[arg-type]
            http_credentials=http_credentials,  # type: ignore[arg-type]
            extra_http_headers=extra_http_headers,
        )
        context.set_default_timeout(HANG_S * 1000)
        self._contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        self._errors[id(page)] = errors
        page.on(
            "console",
            lambda message: (
                errors.append(f"console: {message.text} ({message.location})")
                if message.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        return page

    def errors(self, page: Page) -> list[str]:
        return list(self._errors.get(id(page), []))

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def new_page(request: pytest.FixtureRequest) -> Iterator[PageMaker]:
    maker = PageMaker(request)
    yield maker
    maker.close()


def screenshot(page: Page, name: str) -> Path:
    """Saves the whole page as <screenshots>/<name>.png (look at them: CI keeps the folder)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# --- the web service ----------------------------------------------------------------------------


class LoopThread:
    """An asyncio loop running in a thread of its own, for the session."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="web-tests-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Awaitable[T], timeout: float = HANG_S) -> T:
        """Runs `coro` on the loop; returns its result here."""

        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(HANG_S)
        self.loop.close()


@pytest.fixture(scope="session")
def service_loop() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@dataclass
class WebService:
    url: str
    context: WebContext
    live: LiveCalls
    loop: LoopThread
    token: str | None = None
    robot_dirs: list[Path] = field(default_factory=list)
    seeded: Seeded | None = None
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    def feed(self, item: RecordItem) -> None:
        """Hands a record item to the in-process LiveCalls, as the recorder of `serve` does."""
        self.loop.run(self.live.handle(item))

    def credentials(self) -> dict[str, str]:
        """Playwright's http_credentials for this service's token (Basic auth, any user)."""
        assert self.token is not None
        return {"username": "voiceplat", "password": self.token}


def _live_source(live: LiveCalls) -> Any:
    from voiceplat.web import live_source

    return live_source.InProcessLive(live)


async def _start_service(
    loop: LoopThread, robot_dirs: Sequence[Path], token: str | None, live: LiveCalls | None
) -> WebService:
    import uvicorn
    from pydantic import SecretStr

    from voiceplat.robot import load_robot
    from voiceplat.storage.live import LiveCalls
    from voiceplat.web.app import create_app
    from voiceplat.web.calls.store import call_store_for
    from voiceplat.web.context import WebContext
    from voiceplat.web.settings import WebSettings

    robots = {}
    for directory in robot_dirs:
        # root_dir: the robot folder's parent, so no developer's .env in the cwd leaks in
        robot = load_robot(directory, root_dir=Path(directory).parent)
        robots[robot.name] = robot
    live = live or LiveCalls()
    context = WebContext(
        settings=WebSettings(token=SecretStr(token) if token else None),
        robots=robots,
        calls=call_store_for({}, robots),  # {}: the JSON files, whatever POSTGRES_DSN says
        live=_live_source(live),
        in_process_live=live,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(context), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    service = WebService(f"http://127.0.0.1:{port}", context, live, loop, token, list(robot_dirs))
    service._server, service._task = server, task
    return service


async def _stop_service(service: WebService) -> None:
    assert service._server is not None and service._task is not None
    service._server.should_exit = True
    await asyncio.wait_for(service._task, HANG_S)


def wait_until_serving(url: str) -> None:
    """Returns once the service answers /health (it has started, or the GET fails loudly)."""
    with urllib.request.urlopen(f"{url}/health", timeout=HANG_S) as response:
        assert response.status == 200, f"{url}/health: {response.status}"


@pytest.fixture(scope="session")
def start_web(service_loop: LoopThread) -> Iterator[Callable[..., WebService]]:
    """start_web(robot_dirs, token=None, live=None) -> a running WebService (stopped at the end
    of the session). `live`: the LiveCalls of a robot running on `service_loop` (the talk page's
    robot), else a fresh one."""
    started: list[WebService] = []

    def start(
        robot_dirs: Sequence[Path], token: str | None = None, live: LiveCalls | None = None
    ) -> WebService:
        service = service_loop.run(_start_service(service_loop, robot_dirs, token, live))
        started.append(service)
        wait_until_serving(service.url)
        return service

    yield start
    for service in started:
        service_loop.run(_stop_service(service))


@pytest.fixture(scope="session")
def seeded_robots(tmp_path_factory: pytest.TempPathFactory, service_loop: LoopThread) -> Any:
    """Copies of the fixture robots with the seeded calls in their logs: (dirs, Seeded)."""
    from voiceplat.robot import load_robot

    base = tmp_path_factory.mktemp("web_robots")
    dirs = []
    for name in ("echo", "clinic_fake"):
        target = base / name
        shutil.copytree(FIXTURE_ROBOTS / name, target, ignore=shutil.ignore_patterns("logs"))
        dirs.append(target)
    echo, clinic = (load_robot(d, root_dir=base) for d in dirs)
    seeded = service_loop.run(seed_calls(echo, clinic, datetime.now(UTC)))
    return dirs, seeded


@pytest.fixture(scope="session")
def web(start_web: Callable[..., WebService], seeded_robots: Any) -> WebService:
    """The web service over the seeded robots, no token."""
    dirs, seeded = seeded_robots
    service = start_web(dirs)
    service.seeded = seeded
    return service


@pytest.fixture(scope="session")
def web_with_token(start_web: Callable[..., WebService], seeded_robots: Any) -> WebService:
    """The same robots behind VOICEPLAT_WEB_TOKEN=TOKEN."""
    dirs, seeded = seeded_robots
    service = start_web(dirs, token=TOKEN)
    service.seeded = seeded
    return service


# The page's <audio id="player"> ready to play (canplay): its duration in seconds.
AUDIO_READY_JS = """async () => {
  const audio = document.querySelector("audio#player");
  if (audio.readyState < 3) {
    await new Promise((ok, fail) => {
      audio.addEventListener("canplay", ok, { once: true });
      audio.addEventListener("error", () => fail(new Error("audio error " + audio.error?.code)),
                             { once: true });
      audio.load();
    });
  }
  return audio.duration;
}"""
