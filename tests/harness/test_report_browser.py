"""Harness layer: the report renders in a real headless browser (Debian's chromium): every image
loads, and a screenshot is taken. Slow; skipped only where /usr/bin/chromium is absent."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.report import build_report
from tests.harness import report_fixtures as fx

CHROMIUM = Path("/usr/bin/chromium")
# Run once the page has loaded: record on <body> how many images decoded and which did not.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken", broken.join(" "));
});
</script>"""


def chromium(profile: Path, *arguments: str, timeout: float = 120) -> str:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_renders_with_every_image(tmp_path):
    index = build_report(fx.full_sweep(tmp_path / "sweep"))
    # The check runs on a copy, so the report itself stays script-free.
    probe = index.parent / "_image_check.html"
    probe.write_text(index.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    dom = chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom",
                   probe.as_uri())
    probe.unlink()
    count = re.search(r'data-images="(\d+)"', dom)
    assert count, "the image check did not run"
    assert int(count.group(1)) == len(re.findall(r"<img ", index.read_text())) >= 7
    assert re.search(r'data-broken=""', dom), re.search(r'data-broken="[^"]*"', dom).group(0)

    screenshot = tmp_path / "report.png"
    chromium(tmp_path / "profile", "--window-size=1280,2400", f"--screenshot={screenshot}",
             index.as_uri())
    assert screenshot.stat().st_size > 20_000
    keep = Path(os.environ.get("REPORT_SCREENSHOT_DIR", tmp_path))
    if keep != tmp_path:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, keep / "report.png")
