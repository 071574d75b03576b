"""Check that `dvc plots show` draws every vega chart with no network: render the page in headless
Chromium and count the charts drawn against the charts on the page.

    python scripts/check_offline_plots.py            # needs chromium (Debian: apt install chromium)

Prints the counts; exits 1 when a chart is not drawn or the page loads a script from the network.
"""
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Chromium's own background connections are refused on a closed network; these keep it quiet.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000"]


def main():
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        sys.exit("error: no chromium on PATH (Debian: apt install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plots"
        subprocess.run(["dvc", "plots", "show", "-o", str(out)], check=True, capture_output=True)
        page = (out / "index.html").read_text(encoding="utf-8")
        remote = re.findall(r'<script[^>]+src="(https?://[^"]+)"', page)
        charts = page.count("vegaEmbed('#")
        dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp}/profile", "--dump-dom",
                              (out / "index.html").as_uri()], capture_output=True, text=True, timeout=300).stdout
    drawn = dom.count('role="graphics-document"')
    images = page.count("<img")
    print(f"vega charts on the page: {charts}; drawn offline: {drawn}; images: {images}; "
          f"scripts from the network: {len(remote)}")
    if remote or drawn < charts:
        sys.exit(1)


if __name__ == "__main__":
    main()
