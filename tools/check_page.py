"""Does the `dvc plots show` page draw every plot of dvc.yaml with no network? Renders it in
headless Chromium (the system's, or CHROMIUM=...) with no host resolvable and a probe script
that records every script error, failed load and console error; each declared vega plot must
be a drawn canvas or svg, each image a decoded picture. `--page` checks a page already made.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# vega-embed's notes on every DVC template ("$schema" names v5, the library is v5.x.y).
HARMLESS = re.compile(r"spec uses Vega(-Lite)? v5, but (the )?current version")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
# Offline: no host resolves; no background traffic of Chromium's own.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=30000"]
PROBE = """<script>
window.__check = {errors: [], warnings: [], failed: []};
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) { __check.failed.push(t.src || t.href); }
  else { __check.errors.push(String(e.message)); }
}, true);
window.addEventListener('unhandledrejection', function (e) { __check.errors.push('unhandled: ' + e.reason); });
['error', 'warn'].forEach(function (level) {
  var original = console[level];
  console[level] = function () {
    __check[level === 'error' ? 'errors' : 'warnings'].push(Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
});
window.addEventListener('load', function () { setTimeout(function () {
  var vega = {}, images = {};
  document.querySelectorAll('div[id]').forEach(function (div) {
    // a vega plot's div holds its vegaEmbed call, which replaces it with the chart
    if (!div.classList.contains('vega-embed') && !div.querySelector(':scope > script')) return;
    var drawn = div.querySelector('canvas, svg');
    var box = drawn ? drawn.getBoundingClientRect() : null;
    vega[div.id] = !!(box && box.width > 0 && box.height > 0);
  });
  document.querySelectorAll('img').forEach(function (img) {
    images[img.getAttribute('src')] = img.complete && img.naturalWidth > 0;
  });
  var out = document.createElement('pre');
  out.id = '__check';
  out.textContent = JSON.stringify({vega: vega, images: images, errors: __check.errors,
    warnings: __check.warnings, failed: __check.failed, height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
}, 2000); });
</script>
"""


def browser() -> str:
    found = os.environ.get("CHROMIUM") or next((b for b in map(shutil.which, BROWSERS) if b), None)
    if not found:
        sys.exit("check_page: no Chromium found; install one (Debian/Ubuntu: apt-get install chromium) "
                 "or set CHROMIUM=/path/to/chromium")
    return found


def chromium(page: Path, *args: str) -> str:
    binary = browser()
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                             capture_output=True, text=True, timeout=180)
    if out.returncode:
        sys.exit(f"check_page: {binary} failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out.stdout


def declared(dvc_yaml: Path) -> tuple[list[str], list[str]]:
    """(vega plot ids, image paths or folders) of dvc.yaml's top-level plots."""
    entries = yaml.safe_load(dvc_yaml.read_text()).get("plots", [])
    vega = [plot for entry in entries if isinstance(entry, dict) for plot in entry]
    return vega, [entry for entry in entries if not isinstance(entry, dict)]


def check(page: Path, dvc_yaml: Path) -> tuple[list[str], dict]:
    """The problems found on ``page`` (none: every declared plot drew), and what was seen."""
    text = page.read_text(encoding="utf-8")
    probed = page.with_name(f".check_{page.name}")
    probed.write_text(text.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    try:
        dom = chromium(probed, "--dump-dom")
    finally:
        probed.unlink()
    found = re.search(r'<pre id="__check">(.*?)</pre>', dom, re.S)
    if not found:
        return ["the page never finished loading (no report from the probe)"], {}
    seen = json.loads(html.unescape(found.group(1)))
    seen["warnings"] = [w for w in seen["warnings"] if not HARMLESS.search(w)]
    vega, images = declared(dvc_yaml)
    problems = [f"script error: {e}" for e in seen["errors"]] + [f"failed to load: {u}" for u in seen["failed"]]
    for plot in vega:
        if plot not in seen["vega"]:
            problems.append(f"{plot}: not on the page (DVC could not read its data)")
        elif not seen["vega"][plot]:
            problems.append(f"{plot}: on the page but not drawn")
    for image in images:
        # DVC copies each image to static/<rev>_<path, / as _>; a folder's, to <rev>_<folder>_<name>
        flat = image.replace("/", "_")
        srcs = [s for s in seen["images"] if s.endswith(flat) or (not Path(image).suffix and f"_{flat}_" in s)]
        if not srcs:
            problems.append(f"{image}: not on the page (not produced here: `make repro` or `dvc pull`)")
        problems += [f"{src}: on the page but not decoded" for src in srcs if not seen["images"][src]]
    return problems, seen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", type=Path, help="a page `dvc plots show/diff` wrote (default: run `dvc plots show`)")
    parser.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of the whole page here")
    args = parser.parse_args(argv)
    page = args.page
    if page is None:
        out = Path(tempfile.mkdtemp(prefix="dvc_plots_"))
        shown = subprocess.run(["dvc", "plots", "show", "--out", str(out)], capture_output=True, text=True,
                               cwd=args.dvc_yaml.parent)
        if shown.returncode:
            sys.exit(f"check_page: dvc plots show failed: {shown.stderr.strip()}")
        page = out / "index.html"
    problems, seen = check(page, args.dvc_yaml)
    drawn = sum(seen.get("vega", {}).values()) + sum(seen.get("images", {}).values())
    print(f"{page}: {page.stat().st_size / 1e6:.2f} MB, {drawn} plots drawn offline "
          f"({sum(seen.get('vega', {}).values())} vega, {sum(seen.get('images', {}).values())} images), "
          f"{len(seen.get('warnings', []))} console warnings")
    for warning in seen.get("warnings", []):
        print(f"  warning: {warning}")
    if args.screenshot and seen:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        chromium(page, f"--screenshot={args.screenshot.resolve()}", f"--window-size=1280,{seen['height'] + 40}")
        print(f"screenshot: {args.screenshot}")
    if problems:
        sys.exit("check_page: " + "; ".join(problems))
    print("check_page: every plot of dvc.yaml drew, no script error, no failed load")


if __name__ == "__main__":
    main()
