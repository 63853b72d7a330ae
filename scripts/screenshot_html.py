"""Open an nsys-doctor HTML page in headless Chromium: take a screenshot and report console errors.

    python scripts/screenshot_html.py report.html -o report.png [--size 1400,2400] [--chromium PATH]

Prints one JSON line: the screenshot path, its size, the browser's version, and the console messages Chromium
logged for the page (errors, CSP violations, failed loads). Exit 0 when the screenshot exists and no error was
logged; 1 otherwise; 2 when no Chromium is found. The page is opened from a file:// URL with networking left as
it is: a page that tried to load anything would log a CSP or load error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# what Chromium prints to stderr with --enable-logging=stderr for a page's console, CSP and load problems
CONSOLE = re.compile(r'(CONSOLE[:(]\d+|"Refused to|Content Security Policy|Failed to load|net::ERR_|Uncaught)')


def find_chromium(explicit: str | None = None) -> str | None:
    if explicit:
        return explicit if shutil.which(explicit) or Path(explicit).is_file() else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_version(browser: str) -> str:
    try:
        out = subprocess.run([browser, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _run(browser: str, args: list[str], profile: str, timeout: float) -> subprocess.CompletedProcess[str]:
    base = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--no-first-run",
        "--no-default-browser-check",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    env = {**os.environ, "HOME": profile}
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env)


def console_messages(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if CONSOLE.search(line)]


def screenshot(
    page: Path, png: Path, size: str = "1400,2400", browser: str | None = None, timeout: float = 120.0
) -> dict[str, object]:
    """Screenshot ``page`` into ``png`` and collect console messages (a second run with ``--dump-dom`` checks the
    page parsed and catches messages logged while it loads)."""
    exe = find_chromium(browser)
    if exe is None:
        raise FileNotFoundError("no chromium found (apt-get install chromium)")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="nsys-doctor-chromium-") as profile:
        shot = _run(exe, [f"--screenshot={png.resolve()}", f"--window-size={size}", url], profile, timeout)
        dom = _run(exe, ["--dump-dom", url], profile, timeout)
    messages = console_messages(shot.stderr) + console_messages(dom.stderr)
    return {
        "page": str(page),
        "screenshot": str(png),
        "bytes": png.stat().st_size if png.is_file() else 0,
        "chromium": chromium_version(exe),
        "returncode": shot.returncode,
        "dom_bytes": len(dom.stdout),
        "console": messages,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("page", type=Path)
    ap.add_argument("-o", "--output", type=Path, help="PNG to write (default: PAGE with .png)")
    ap.add_argument("--size", default="1400,2400", help="window size WIDTH,HEIGHT (default 1400,2400)")
    ap.add_argument("--chromium", help="browser executable (default: chromium, chromium-browser, google-chrome)")
    args = ap.parse_args(argv)
    png = args.output or args.page.with_suffix(".png")
    try:
        result = screenshot(args.page, png, args.size, args.chromium)
    except FileNotFoundError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    print(json.dumps(result))
    ok = result["returncode"] == 0 and int(result["bytes"]) > 0 and not result["console"]  # type: ignore[call-overload]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
