"""blemore view in a real browser: headless Chromium (Debian's ``chromium``) driven over the
DevTools protocol (``websocket-client``) opens the viewer of a predictions file, plays a clip
(muted) and checks that the timeline cursor follows ``currentTime``.

Skipped, with the reason, when ``chromium`` or ``websocket-client`` is missing. Set
``BLEMORE_SCREENSHOT=/path/shot.png`` to keep a screenshot of the page.
"""
import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from media_fixtures import make_clip

from blemore.view import timelines_path, write_timelines, write_view

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
websocket = pytest.importorskip("websocket", reason="websocket-client is not installed (pip install websocket-client)")
if CHROMIUM is None:
    pytest.skip("no chromium installed (Debian: apt-get install chromium); the browser test of blemore view is skipped",
                allow_module_level=True)

# the timeline geometry of blemore.view's script: x = PL + (W - PL - PR) * t / duration
W, PL, PR = 520, 30, 8


class DevTools:
    """A minimal DevTools-protocol client for one page."""

    def __init__(self, ws_url: str):
        self.ws = websocket.create_connection(ws_url, timeout=20, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")


@pytest.fixture
def browser(tmp_path):
    profile = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                             f"--user-data-dir={profile}", "--autoplay-policy=no-user-gesture-required",
                             "--mute-audio", "--allow-file-access-from-files", "--window-size=1200,900",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("chromium did not start its DevTools endpoint within 30 s")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        dt = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield dt
        dt.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_cursor_follows_playback(tmp_path, browser):
    clip = make_clip(tmp_path / "media" / "A101_hap_int1_ver1.mp4", seconds=3.0, fps=25, audio="voice")
    t = np.arange(0.02, 3.0, 0.04)
    p = np.stack([np.clip(np.sin(t + k), 0, None) + 0.05 for k in range(6)], axis=1)
    p /= p.sum(1, keepdims=True)
    out = tmp_path / "pred.json"
    write_timelines(timelines_path(out), [{"clip_id": "A101_hap_int1_ver1", "label": "hap", "proba": p.mean(0),
                                            "media": clip, "duration": 3.0, "times": t, "timeline": p}],
                    model="test", notice="uncalibrated: test data")
    html = write_view([timelines_path(out)], tmp_path / "view" / "report.html")
    dt = browser
    dt.call("Page.enable")
    dt.call("Page.navigate", url=html.resolve().as_uri())
    deadline = time.monotonic() + 20
    while dt.js("document.readyState + ':' + document.querySelectorAll('video').length") != "complete:1":
        assert time.monotonic() < deadline, "the page or its video element did not appear"
        time.sleep(0.1)
    ready = dt.js("""new Promise((ok, bad) => { const v = document.querySelector('video');
        if (v.readyState >= 1) return ok(v.duration);
        v.addEventListener('loadedmetadata', () => ok(v.duration));
        v.addEventListener('error', () => bad('media error ' + (v.error && v.error.code)));
        setTimeout(() => bad('no metadata after 15 s'), 15000); })""")
    assert abs(ready - 3.0) < 0.2
    assert dt.js("document.querySelectorAll('svg.tl polyline').length") == 6
    dt.js("(async () => { const v = document.querySelector('video'); v.muted = true; await v.play(); return 1; })()")
    samples = []
    for _ in range(6):
        time.sleep(0.25)
        samples.append(dt.js("""new Promise(ok => requestAnimationFrame(() => requestAnimationFrame(() => {
            const v = document.querySelector('video'), c = document.querySelector('svg.tl line.cursor');
            ok([v.currentTime, parseFloat(c.getAttribute('x1')), parseFloat(c.getAttribute('data-t')), v.paused]);
        })))"""))
    times = [s[0] for s in samples]
    xs = [s[1] for s in samples]
    assert times[-1] > times[0] + 0.5, f"the clip did not play: {samples}"
    assert all(b > a for a, b in zip(xs, xs[1:])), f"the cursor did not move right with playback: {samples}"
    for ct, x, shown, _ in samples:  # the cursor lags currentTime by at most a frame or two
        assert abs(shown - ct) < 0.15 and abs(x - (PL + (W - PL - PR) * ct / 3.0)) < 0.15 * (W - PL - PR) / 3.0
    # paused and seeked: exactly at currentTime
    got = dt.js("""new Promise(ok => { const v = document.querySelector('video'); v.pause();
        v.addEventListener('seeked', () => requestAnimationFrame(() => {
            const c = document.querySelector('svg.tl line.cursor');
            ok([v.currentTime, parseFloat(c.getAttribute('x1'))]); }), {once: true});
        v.currentTime = 1.5; })""")
    assert abs(got[0] - 1.5) < 0.05 and abs(got[1] - (PL + (W - PL - PR) * got[0] / 3.0)) < 0.02
    shot = os.environ.get("BLEMORE_SCREENSHOT")
    if shot:
        data = dt.call("Page.captureScreenshot", format="png")["data"]
        with open(shot, "wb") as f:
            f.write(base64.b64decode(data))


def test_lazy_cards_filters_and_confusion_clicks(tmp_path, browser):
    import pandas as pd

    from blemore.labels import TARGET_NAMES

    rng = np.random.default_rng(0)
    ids = [f"A{100 + i % 7}_{'hap_int1' if i % 3 else 'sad_int2'}_ver{i}" for i in range(130)]
    labels = ["hap" if rng.random() < 0.6 else "sad" for _ in ids]
    out = tmp_path / "pred.json"
    t = np.array([0.5, 1.0])
    write_timelines(timelines_path(out), [{"clip_id": c, "label": lab, "proba": np.full(6, 1 / 6), "times": t,
                                          "timeline": np.full((2, 6), 1 / 6)} for c, lab in zip(ids, labels)])
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"run": "r", "validation": {}}))
    tt, pt = rng.integers(0, 6, 300), rng.integers(0, 36, 300)
    pd.DataFrame({"clip_id": [f"c{i}" for i in range(300)], "actor": "A1", "fold": 0, "true_target": tt,
                  "pred_target": pt}).to_csv(run / "predictions" / "validation.csv", index=False)
    html = write_view([run, timelines_path(out)], tmp_path / "v.html")
    dt = browser
    dt.call("Page.navigate", url=html.resolve().as_uri())
    deadline = time.monotonic() + 20
    while dt.js("document.readyState") != "complete":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cards = "document.querySelectorAll('.card').length"
    assert dt.js(cards) == 40  # the first page only
    wait_more = """new Promise(ok => { document.getElementById('sentinel-p0').scrollIntoView();
        setTimeout(() => ok(document.querySelectorAll('.card').length), 500); })"""
    assert dt.js(wait_more) == 80 and dt.js(wait_more) == 120 and dt.js(wait_more) == 130
    wrong = sum(lab != ("hap" if "hap" in c else "sad") for c, lab in zip(ids, labels))
    got = dt.js("""(() => { const s = document.querySelector('select[data-filter="result"]'); s.value = 'wrong';
        s.dispatchEvent(new Event('change')); return [document.querySelectorAll('.card').length,
        document.querySelectorAll('.card.wrong').length, document.getElementById('count-p0').textContent]; })()""")
    assert got[0] == got[1] == min(wrong, 40) and got[2].endswith(f"of {wrong} clips shown")
    # clicking a confusion cell lists exactly its clips
    a, b = int(tt[0]), int(pt[0])
    n = int(((tt == a) & (pt == b)).sum())
    rows = dt.js(f"""(() => {{ document.querySelector('td.cm[data-cell="{a},{b}"]').click();
        return [...document.querySelectorAll('#cmclips-r0-validation tr')].slice(1).map(r => r.cells[0].textContent); }})()""")
    assert sorted(rows) == sorted(f"c{i}" for i in np.flatnonzero((tt == a) & (pt == b)))
    assert len(rows) == n and TARGET_NAMES[a] in dt.js("document.querySelector('#cmclips-r0-validation h4').textContent")
