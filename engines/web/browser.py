"""One headless Chromium per process, and the local web server its page loads from.

``Server`` is ``http.server`` on 127.0.0.1 (a free port, in a daemon thread) with the headers that
make the page cross-origin isolated (COOP ``same-origin``, COEP ``require-corp``), so ONNX Runtime
Web may start wasm threads.  It serves the page (``page/``), the pinned runtime (``/ort/``, from
``node_modules/onnxruntime-web/dist``) and the models registered with it (``/models/<key>.onnx``).

``Browser`` launches Chromium once, through Playwright's async API on an event loop of its own
thread: a caller in any thread (or inside another event loop, as the MCP server is) submits a
coroutine and waits for it with a time limit.  When the limit passes the page is closed, which
ends whatever it was computing, and the next call opens a fresh page; the browser stays.  WebGPU
is switched on with SwiftShader as the adapter where there is no GPU (``WEBGPU_ARGS``)."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import http.server
import mimetypes
import re
import threading
from pathlib import Path
from typing import Any, Awaitable
from urllib.parse import unquote, urlsplit

from . import runtime

WEBGPU_ARGS = ("--enable-unsafe-webgpu", "--enable-unsafe-swiftshader",
               "--use-webgpu-adapter=swiftshader")  # fmt: skip
WEBNN_ARGS = ("--enable-features=WebMachineLearningNeuralNetwork",)
START_SECONDS = 60.0  # launching Chromium and loading the page (a cold start takes a few s)
CLOSE_SECONDS = 10.0
VERBOSE = re.compile(r"\[[VI]:onnxruntime")  # ORT's verbose and info log lines
MAX_CONSOLE_LINES = 2000
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".onnx": "application/octet-stream", ".html": "text/html; charset=utf-8",
         ".json": "application/json"}  # fmt: skip


class WebEngineError(RuntimeError):
    """The browser engine could not do what was asked; the message says why, in words."""

    plain_message = True  # engines.parity.describe keeps the words as they are


class PageTimeout(WebEngineError):
    """A page did not answer within its time limit (it was closed)."""


class Server:
    """Static files and registered models over HTTP on 127.0.0.1, cross-origin isolated."""

    def __init__(self, roots: dict[str, Path]):
        self.roots = dict(roots)  # URL prefix ("" for the page, "ort") -> folder
        self.models: dict[str, Path] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 — http.server's spelling
                path = server.resolve(unquote(urlsplit(self.path).path))
                if path is None:
                    self.send_error(404)
                    return
                body = path.read_bytes()
                self.send_response(200)
                kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
                self.send_header("Content-Type", kind or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                for name, value in ISOLATION_HEADERS.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet: a test's output is its own
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, name="skillmill-web-server",
                         daemon=True).start()  # fmt: skip

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names, never one outside the served folders."""
        parts = [p for p in url_path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            return None
        if parts[0] == "models" and len(parts) == 2:
            return self.models.get(parts[1].removesuffix(".onnx"))
        prefix, rest = (parts[0], parts[1:]) if parts[0] in self.roots else ("", parts)
        if not rest or prefix not in self.roots:
            return None
        path = self.roots[prefix].joinpath(*rest)
        return path if path.is_file() else None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """Chromium driven from its own thread; ``call`` runs a page function with a time limit."""

    def __init__(self, executable: str, server: Server, page: str = "engine.html"):
        self.executable = executable
        self.server = server
        self.page_url = server.url + page
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="skillmill-web-browser",
                                       daemon=True)  # fmt: skip
        self.thread.start()
        self._playwright: Any = None
        self._browser: Any = None
        self._page: Any = None
        self.page_generation = 0  # bumped when a page is replaced: its sessions are gone
        self.console: list[str] = []  # the current page's console warnings and errors
        self.version = ""
        self.offered: dict[str, Any] | None = None  # the page's answer to ``environment()``
        self._lock = threading.Lock()  # one page call at a time
        try:
            self._wait(self._start(), START_SECONDS, "starting the browser")
        except BaseException:
            self.close()
            raise

    def _wait(self, coroutine: Awaitable, seconds: float, doing: str) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout=seconds)
        except (TimeoutError, concurrent.futures.TimeoutError):  # one class from Python 3.11
            future.cancel()
            raise PageTimeout(f"{doing} did not finish within {seconds:g} s") from None

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        args = [*WEBGPU_ARGS, *WEBNN_ARGS]
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.executable, args=args, timeout=START_SECONDS * 1000
        )
        self.version = self._browser.version
        await self._new_page()

    async def _new_page(self) -> Any:
        page = await self._browser.new_page()
        self.console = []
        page.on("console", self._console_line)
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        await page.goto(self.page_url, timeout=START_SECONDS * 1000)
        await page.wait_for_function("window.skillmill !== undefined", timeout=START_SECONDS * 1000)
        self._page = page
        self.page_generation += 1
        return page

    def _console_line(self, message: Any) -> None:
        """Keep the page's warnings and errors, and of ORT's verbose log only where it placed
        nodes (the runner reads those); the rest would grow without end."""
        text = message.text
        if message.type not in ("warning", "error"):
            return
        if VERBOSE.search(text) and "placed on" not in text:
            return
        self.console.append(f"{message.type}: {text}")
        del self.console[:-MAX_CONSOLE_LINES]

    async def _evaluate(self, script: str, argument: Any, seconds: float) -> Any:
        page = self._page if self._page is not None and not self._page.is_closed() else None
        if page is None:
            page = await self._new_page()
        try:
            return await asyncio.wait_for(page.evaluate(script, argument), seconds)
        except asyncio.TimeoutError:
            self._page = None
            try:  # closing the page stops what it was running (a renderer stuck in wasm too)
                await asyncio.wait_for(page.close(run_before_unload=False), CLOSE_SECONDS)
            except Exception:  # noqa: BLE001 — the next call opens a new page either way
                pass
            raise PageTimeout(f"the page did not answer within {seconds:g} s; it was closed, and "
                              "the next run opens a fresh one") from None  # fmt: skip

    def call(self, function: str, argument: Any, seconds: float) -> Any:
        """``await skillmill.<function>(...argument)`` in the page, within ``seconds``.  A
        JavaScript exception comes back as ``WebEngineError`` with the page's message."""
        script = f"(args) => window.skillmill.{function}(...args)"
        with self._lock:
            try:
                return self._wait(self._evaluate(script, list(argument), seconds),
                                  seconds + CLOSE_SECONDS + START_SECONDS, f"page call {function}")  # fmt: skip
            except WebEngineError:
                raise
            except Exception as exc:  # noqa: BLE001 — Playwright's Error carries the JS message
                raise WebEngineError(page_message(exc)) from exc

    def run_script(self, script: str, argument: Any, seconds: float) -> Any:
        """Any ``page.evaluate`` script, within ``seconds`` (tests use it for a page that hangs)."""
        with self._lock:
            try:
                return self._wait(self._evaluate(script, argument, seconds),
                                  seconds + CLOSE_SECONDS + START_SECONDS, "page script")  # fmt: skip
            except WebEngineError:
                raise
            except Exception as exc:  # noqa: BLE001 — Playwright's Error carries the JS message
                raise WebEngineError(page_message(exc)) from exc

    def alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected() and self.thread.is_alive()

    def close(self) -> None:
        async def stop() -> None:
            if self._browser is not None:
                await self._browser.close()
            if self._playwright is not None:
                await self._playwright.stop()

        if self.thread.is_alive():
            try:
                self._wait(stop(), CLOSE_SECONDS, "closing the browser")
            except Exception:  # noqa: BLE001 — leaving anyway
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CLOSE_SECONDS)


def page_message(exc: BaseException) -> str:
    """A Playwright error's useful line: the page's own ``Error: ...``, without the call log."""
    text = str(exc)
    text = text.split("Call log:", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    return first.removeprefix("Page.evaluate: ").removeprefix("Error: ")[:500]


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def shared_browser() -> Browser:
    """The process's browser and server, started on first use and kept (a start costs seconds).
    ``WebEngineError`` says what is missing when there can be none."""
    with _shared_lock:
        browser = _shared.get("browser")
        if browser is not None and browser.alive():
            return browser
        if browser is not None:
            browser.close()
            _shared.pop("browser")
        why = runtime.problem()
        if why:
            raise WebEngineError(why)
        executable, _ = runtime.browser_executable()
        server = _shared.get("server")
        if server is None:
            server = _shared["server"] = Server({"": runtime.PAGE, "ort": runtime.DIST})
        try:
            _shared["browser"] = Browser(executable, server)
        except WebEngineError:
            raise
        except Exception as exc:  # noqa: BLE001 — a browser that will not start, in its words
            raise WebEngineError(f"{executable} did not start: {page_message(exc)}") from exc
        return _shared["browser"]


def shutdown() -> None:
    """Close the shared browser and server (at exit; tests call it to start over)."""
    with _shared_lock:
        browser = _shared.pop("browser", None)
        if browser is not None:
            browser.close()
        server = _shared.pop("server", None)
        if server is not None:
            server.close()


atexit.register(shutdown)
