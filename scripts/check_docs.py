#!/usr/bin/env python
"""Check the built documentation in headless Chromium and take its screenshots.

Serves the HTML build (default ``docs/_build/html``) on 127.0.0.1 and opens every
page in one headless Chromium (Debian's ``chromium``), driven through the DevTools
protocol over a pipe (``--remote-debugging-pipe``: no extra Python package), with the
network blocked: every request not for 127.0.0.1 goes to a proxy that does not exist
(``--proxy-server``), so the pages must be self-contained. For each page it checks that

* the page loads (HTTP 200, the load event fires, the theme's main content is there);
* nothing is reported as an error on the console: ``console.error``, uncaught
  exceptions, and failed loads of any resource (a missing image, script or style sheet);
* it requests nothing from outside 127.0.0.1 (a CDN script, font or image);
* its mathematics is rendered: once MathJax (bundled, ``_static/mathjax``) has started,
  every ``.math`` element holds typeset output (``mjx-container``) and none an error;
* every ``<img>`` is loaded and has a nonzero size; the gallery pages
  (``auto_examples/plot_*.html``) must each show at least one figure, and the gallery
  index one thumbnail per example;
* the link to the asv dashboard (``asv/index.html``) resolves; with
  ``--asv-min-commits N``, the dashboard in the build draws each headline graph
  (``asv_dashboard.GRAPHS``: W1, W2, decompose vs the limit, accuracy vs mpmath)
  with points at N or more commits, every request going to the local server.

Screenshots of the home page and of one gallery example are written to ``--shots``
(default ``docs/``: ``screenshot_home.png``, ``screenshot_gallery.png``).

The browser helpers (``find_chromium``, ``serve``, ``CHROMIUM_FLAGS``) are those of
``scripts/asv_dashboard.py``.

Exit status: 0 when every check passed (or Chromium is missing: the browser checks are
then skipped with a message, unless ``--require-browser``), 1 when a check failed, 2 on
a usage error (no build found).

Usage::

    python -m sphinx -W -b html docs docs/_build/html
    python scripts/check_docs.py [--html docs/_build/html] [--shots docs] [--asv-min-commits 30]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asv_dashboard import CHROMIUM_FLAGS, GRAPHS, CheckFailed, find_chromium, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GALLERY_SHOT_PAGE = "auto_examples/plot_theorem1_gain.html"
#: The pydata-sphinx-theme element every content page has.
MAIN_MARKER = "bd-article"
#: Pages of the theme without an article (the search page fills itself in).
NO_ARTICLE = {"search.html"}


def log(msg):
    print(f"[check_docs] {msg}", flush=True)


class DevTools:
    """A minimal Chrome DevTools protocol client over ``--remote-debugging-pipe``.

    Chromium reads NUL-terminated JSON commands from fd 3 and writes NUL-terminated
    JSON responses and events to fd 4.
    """

    def __init__(self, browser, profile, *, timeout=60.0):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child must see them as fds 3 and 4
        flags = [f for f in CHROMIUM_FLAGS if not f.startswith("--window-size")]
        cmd = [
            browser,
            *flags,
            *NO_NETWORK_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "about:blank",
        ]

        def child_fds():
            # dup to free numbers first, in case a pipe end already is fd 3 or 4
            r, w = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        # 3 and 4 are kept open by subprocess's close_fds (which runs after preexec_fn)
        self.proc = subprocess.Popen(
            cmd,
            pass_fds=(3, 4, to_browser_r, from_browser_w),
            preexec_fn=child_fds,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.timeout = timeout
        self._buf = b""
        self._next_id = 0
        self.events = []
        self.session = None

    def close(self):
        try:
            self.send("Browser.close", session=False, wait=False)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise CheckFailed("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method, params=None, *, session=True, wait=True):
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        if not wait:
            return None
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CheckFailed(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        while True:
            ev = self._read_message(deadline)
            if ev.get("method") == method:
                return ev
            if "method" in ev:
                self.events.append(ev)

    def open_tab(self):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )

    def evaluate(self, expression):
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CheckFailed(f"evaluating {expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def load(self, url):
        """Navigate, wait for the load event and for images.

        Returns (HTTP status of the page, errors, external) where ``external`` lists the
        resources the page requested from outside 127.0.0.1 (all blocked).
        """
        self.events.clear()
        nav = self.send("Page.navigate", {"url": url})
        if nav.get("errorText"):
            return None, [f"navigation failed: {nav['errorText']}"], []
        self.wait_event("Page.loadEventFired")
        # let late scripts run and images decode
        self.evaluate(
            "Promise.all(Array.from(document.images).map(i => i.decode()"
            ".catch(() => null))).then(() => new Promise(r => setTimeout(r, 200)))"
        )
        self.send("Runtime.evaluate", {"expression": "1"})  # flush pending events
        status, errors, external, urls = None, [], [], {}
        local = url.split("/", 3)[:3]
        for ev in self.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Network.requestWillBeSent":
                urls[p["requestId"]] = p["request"]["url"]
                where = p["request"]["url"]
                if where.startswith(("http:", "https:")) and where.split("/", 3)[:3] != local:
                    external.append(where)
        for ev in self.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Network.responseReceived" and p.get("type") == "Document":
                status = p["response"]["status"]
            elif m == "Network.responseReceived" and p["response"]["status"] >= 400:
                if not _browser_own(p["response"]["url"]):
                    errors.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif m == "Network.loadingFailed" and not p.get("canceled"):
                where = urls.get(p["requestId"], "?")
                if where not in external:  # those are reported as external requests
                    errors.append(f"failed to load {where}: {p.get('errorText')}")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                errors.append(f"console.{p['type']}: {args}")
            elif m == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                errors.append(
                    "uncaught exception: "
                    + d.get("exception", {}).get("description", d.get("text", ""))
                )
            elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
                entry = p["entry"]
                if entry.get("source") == "network":
                    continue  # the same failure, already reported from the Network domain
                errors.append(f"console ({entry['source']}): {entry['text']}")
        return status, errors, external

    def screenshot(self, path, *, around=None, context=420):
        """PNG of the page top (1280 x 900), or of the ``around`` element with some context above."""
        y, height = 0, 900
        if around:
            box = self.evaluate(
                f"(() => {{ const e = document.querySelector({json.dumps(around)});"
                " if (!e) return null; const r = e.getBoundingClientRect();"
                " return [r.top + window.scrollY, r.bottom + window.scrollY]; })()"
            )
            if box is None:
                raise CheckFailed(f"no {around} on the page to screenshot")
            y = max(0, int(box[0]) - context)
            height = int(box[1]) + 24 - y
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": y, "width": 1280, "height": height, "scale": 1},
            },
        )
        Path(path).write_bytes(base64.b64decode(shot["data"]))


#: The network blocked: Chromium sends every request through a proxy on a closed port
#: of 127.0.0.1 (so it fails), except those for 127.0.0.1 itself (the served pages),
#: which Chromium never proxies.
NO_NETWORK_FLAGS = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]

#: [math elements, typeset MathJax containers, MathJax errors] of the page (-1: no MathJax).
MATH_JS = """(async () => {
    const n = document.querySelectorAll('span.math, div.math').length;
    if (!n) return [0, 0, 0];
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return [n, -1, 0];
    await MathJax.startup.promise;
    return [n, document.querySelectorAll('mjx-container').length,
            document.querySelectorAll('mjx-merror').length];
})()"""


def _browser_own(url):
    """The browser's own request for /favicon.ico (the pages do not link one)."""
    return url.endswith("/favicon.ico")


IMAGES_JS = """Array.from(document.images).map(i => ({
    src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0,
    cls: i.className}))"""


def check_page(dt, base, rel, stats):
    """Errors on one page (a list of strings); ``stats`` counts the math elements seen."""
    status, errors, external = dt.load(base + rel)
    errors += [f"requests {u} from outside (the docs must work offline)" for u in external]
    if status != 200:
        errors.append(f"HTTP status {status}")
    n_math, typeset, failed = dt.evaluate(MATH_JS)
    stats["math"] += n_math
    if typeset == -1:
        errors.append(f"{n_math} math elements but MathJax did not start")
    elif typeset < n_math or failed:
        errors.append(f"math not rendered: {typeset} of {n_math} typeset, {failed} errors")
    if rel not in NO_ARTICLE and not dt.evaluate(f"!!document.querySelector('.{MAIN_MARKER}')"):
        errors.append(f"no .{MAIN_MARKER} (the theme's content) on the page")
    images = dt.evaluate(IMAGES_JS)
    errors += [f"image not loaded: {im['src']}" for im in images if not im["ok"]]
    if rel.startswith("auto_examples/plot_"):
        figs = [
            im
            for im in images
            if "sphx-glr-single-img" in im["cls"] or "sphx-glr-multi-img" in im["cls"]
        ]
        if not figs:
            errors.append("gallery example shows no figure")
    if rel == "auto_examples/index.html":
        thumbs = dt.evaluate("document.querySelectorAll('.sphx-glr-thumbcontainer img').length")
        examples = len(list((ROOT / "docs" / "examples").glob("plot_*.py")))
        if thumbs != examples:
            errors.append(f"gallery index shows {thumbs} thumbnails for {examples} examples")
    return errors


#: Points of each series of the graph on an asv dashboard page, once flot has drawn it.
GRAPH_POINTS_JS = """new Promise(resolve => {
    const t0 = Date.now();
    (function poll() {
        const plot = window.$ && $('#main-graph').data('plot');
        if (plot && plot.getData().length) {
            resolve(plot.getData().map(s => s.data.filter(
                d => d && d[1] !== null && Number.isFinite(d[1])).length));
        } else if (Date.now() - t0 > 20000) { resolve(null); }
        else { setTimeout(poll, 100); }
    })();
})"""


def check_dashboard(dt, html, base, min_commits):
    """The asv dashboard inside the docs: each headline graph drawn with >= ``min_commits`` points.

    Every request of its pages must go to this server (the JS libraries are local
    copies): the dashboard works offline. Returns {graph: errors}; logs the counts.
    """
    failures = {}
    with open(html / "asv" / "index.json") as f:
        published = set(json.load(f)["benchmarks"])
    shown = [name for name in GRAPHS if name in published]
    if not shown:
        return {"asv/index.html": ["none of the headline graphs is published"]}
    for i, name in enumerate(shown):
        url = f"{base}asv/index.html?check={i}#{name}"
        _, errors, external = dt.load(url)
        errors += [f"not local (the dashboard must work offline): {u}" for u in external]
        points = dt.evaluate(GRAPH_POINTS_JS)
        if not points:
            errors.append("the graph was not drawn")
        elif max(points) < min_commits:
            errors.append(f"{max(points)} points, fewer than {min_commits} commits")
        else:
            log(f"asv graph {name}: {len(points)} series, up to {max(points)} points")
        if errors:
            failures[f"asv #{name}"] = errors
    return failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--html",
        default=str(ROOT / "docs" / "_build" / "html"),
        help="HTML build directory (default: docs/_build/html)",
    )
    p.add_argument(
        "--shots", default=str(ROOT / "docs"), help="where to save the screenshots (default: docs/)"
    )
    p.add_argument("--chromium", help="browser executable (default: chromium on PATH)")
    p.add_argument(
        "--asv-min-commits",
        type=int,
        default=0,
        metavar="N",
        help="check the asv dashboard in the build: each headline graph drawn offline "
        "with points at >= N commits (default: 0, only that asv/index.html loads)",
    )
    p.add_argument(
        "--require-browser",
        action="store_true",
        help="fail (instead of skipping) when Chromium is missing",
    )
    args = p.parse_args(argv)
    html = Path(args.html).resolve()
    if not (html / "index.html").is_file():
        log(
            f"{html} has no index.html: build the docs first "
            "(python -m sphinx -W -b html docs docs/_build/html)"
        )
        return 2
    pages = sorted(
        str(f.relative_to(html))
        for f in html.rglob("*.html")
        if not f.relative_to(html).parts[0].startswith(("_", "asv"))
    )
    if not (html / "asv" / "index.html").is_file():
        log("FAILED: asv/index.html (the dashboard or its placeholder) is missing")
        return 1
    gallery = [pg for pg in pages if pg.startswith("auto_examples/plot_")]
    if not gallery:
        log("FAILED: the build has no gallery pages (auto_examples/plot_*.html)")
        return 1
    browser = find_chromium(args.chromium)
    if browser is None:
        log("SKIPPED browser checks: chromium not found (apt-get install -y chromium)")
        return 1 if args.require_browser else 0
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    server, base = serve(html)
    profile = tempfile.mkdtemp(prefix="chromium-docs-")
    start = time.time()
    failures, stats = {}, {"math": 0}
    dt = DevTools(browser, profile)
    try:
        dt.open_tab()
        for rel in pages:
            errors = check_page(dt, base, rel, stats)
            if errors:
                failures[rel] = errors
        for rel in ("asv/index.html",):
            status, _, _ = dt.load(base + rel)
            if status != 200:
                failures[rel] = [f"HTTP status {status}"]
        if args.asv_min_commits:
            if not (html / "asv" / "index.json").is_file():
                failures["asv/index.html"] = ["no dashboard (only the placeholder) in the build"]
            else:
                failures.update(check_dashboard(dt, html, base, args.asv_min_commits))
        dt.load(base + "index.html")
        dt.screenshot(shots / "screenshot_home.png")
        dt.load(base + GALLERY_SHOT_PAGE)
        dt.screenshot(shots / "screenshot_gallery.png", around="img.sphx-glr-single-img")
    except CheckFailed as exc:
        log(f"FAILED: {exc}")
        return 1
    finally:
        dt.close()
        server.shutdown()
        import shutil

        shutil.rmtree(profile, ignore_errors=True)
    for rel, errors in failures.items():
        for err in errors:
            log(f"FAILED {rel}: {err}")
    for name in ("screenshot_home.png", "screenshot_gallery.png"):
        if (shots / name).stat().st_size < 10_000:
            log(f"FAILED: screenshot {shots / name} is (nearly) empty")
            return 1
    if failures:
        log(f"{len(failures)} of {len(pages)} pages failed")
        return 1
    log(
        f"OK: {len(pages)} pages ({len(gallery)} gallery examples) load with the network "
        f"blocked, no console errors, every image present and all {stats['math']} math "
        f"elements rendered, in {time.time() - start:.0f} s; screenshots in {shots}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
