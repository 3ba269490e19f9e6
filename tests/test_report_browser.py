"""A training run's report.html, opened in a real headless Chromium."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

FIGURES = ("curves", "confusion_matrix", "roc_curve", "confidently_wrong")
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)"
)

#: Injected into a copy of the report: after loading, write what the browser
#: actually decoded into attributes that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const loaded = (img) => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
  const figures = [...document.querySelectorAll("img[data-figure]")];
  document.body.dataset.figures = figures.filter(loaded).map((img) => img.dataset.figure).join(",");
  document.body.dataset.brokenImages = [...document.images].filter((img) => !loaded(img)).length;
  document.body.dataset.examples = document.querySelectorAll("img[data-example]").length;
  document.body.dataset.accuracy = JSON.parse(document.getElementById("metrics").textContent).accuracy;
});
</script>"""


def chromium(*args, profile):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_report_renders_with_every_figure(trained_model_file, tmp_path):
    run_dir = trained_model_file.parent
    report = run_dir / "report.html"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))

    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body))
    assert attributes["figures"].split(",") == list(FIGURES)
    assert attributes["broken-images"] == "0"
    assert int(attributes["examples"]) == len(metrics["confidently_wrong"])
    assert float(attributes["accuracy"]) == pytest.approx(metrics["accuracy"])

    screenshot = tmp_path / "report.png"
    shot = chromium("--window-size=1200,2400", f"--screenshot={screenshot}", report.as_uri(), profile=tmp_path / "profile2")
    assert shot.returncode == 0, shot.stderr[-2000:]
    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("L"), np.float32)
    assert pixels.shape == (2400, 1200) and pixels.std() > 10  # drawn, not blank
