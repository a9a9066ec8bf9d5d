"""`toolkit report` over real files: a tiny resnet20 run exported, verified and benched, a reproduction, a sweep, and a run whose
name, model and class names carry markup; the page checked as text and in headless Chromium.

Where Chromium or selenium is missing the browser tests skip (tests/browser.py names what to install).
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

from tests import browser
from tests.helpers import exported_tiny_run, unwritable
from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.experiments.reproduce import reproduce
from toolkit.experiments.sweep import sweep

runner = CliRunner()
EVIL_RUN = "<img src=x onerror=alert(1)>"  # a legal folder name
EVIL_MODEL = '<script>alert("model")</script>'
EVIL_CLASS = '</td><script>alert("class")</script>'
TERMINAL = 100


_MODELS = shutil.ignore_patterns("*.pt", "*.ts", "*.onnx", "*.pt2", "*.pte")  # the report reads only the JSON


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """(root, report.html, {what: output}): every stage's files under one folder, then the report over it."""
    root = tmp_path_factory.mktemp("report")
    run_dir = exported_tiny_run(
        root, "resnet20", "--format", "torchscript,onnx,onnx-int8", "--calibration-images", "32"
    )
    out = {}
    r = run("verify", run_dir, "--limit", "128", "--runtime", "onnxruntime", "--format", "onnx", "--wide")
    assert r.exit_code == 0, r.output
    out["verify --wide"] = r.stdout
    r = run("verify", run_dir, "--limit", "128", "--runtime", "onnxruntime", "--runtime", "torchscript")
    assert r.exit_code in (0, 1), r.output  # a tiny model may fail a low-precision gate: the page shows it
    out["verify"] = r.stdout
    r = run("bench", run_dir, "--no-train", "--batch-sizes", "1,4", "--rounds", "3", "--warmup", "1", "--budget", "0.5",
            "--threads", "1", "--device", "cpu", "--runtime", "eager", "--runtime", "onnxruntime")  # fmt: skip
    assert r.exit_code == 0, r.output
    quick = dict(dataset="synthetic", limit_train=128, limit_test=64, epochs=1, device="cpu")
    reproduce("resnet20", seeds=2, out=root, **quick)
    sweep("resnet20", trials=3, out=root, pruner="none", seed=0, dataset="synthetic", limit_train=128,
          val_size=32, epochs=1, device="cpu")  # fmt: skip
    evil = root / EVIL_RUN
    shutil.copytree(run_dir, evil, ignore=_MODELS)
    for name, edit in (("summary.json", lambda d: d.update(model=EVIL_MODEL)),
                       ("manifest.json", lambda d: d["classes"].__setitem__(0, EVIL_CLASS))):  # fmt: skip
        data = json.loads((evil / name).read_text())
        edit(data)
        (evil / name).write_text(json.dumps(data))
    r = run("runs", "--out", root)
    assert r.exit_code == 0, r.output
    out["runs"] = r.stdout
    r = run("runs", "--out", root, "--wide")
    out["runs --wide"] = r.stdout
    page = root / "report.html"
    r = run("report", root, "--out", page)
    assert r.exit_code == 0, r.output
    out["report"] = r.stdout
    return root, page, out


def test_every_section_is_built_from_the_files(reported):
    root, page, out = reported
    html = page.read_text()
    for section in ("machine", "runs", "curves", "reproduce", "sweeps", "parity", "bench", "ship"):
        assert f'<section id="{section}">' in html, section
    assert "notes" not in re.findall(r'<section id="(\w+)"', html)  # nothing unreadable
    s = json.loads((root / "sweeps" / "resnet20-sweep" / "sweep.json").read_text())
    assert set(s["importances"]) == set(s["best"]["params"])  # PED-ANOVA: no scikit-learn needed
    # Offline by construction: no external reference, one script allowed by its hash, nothing else.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert html.count("<script") == 1 and "default-src 'none'" in html


def test_markup_from_files_is_escaped(reported):
    _, page, _ = reported
    html = page.read_text()
    for evil in (EVIL_RUN, EVIL_MODEL, EVIL_CLASS):
        assert evil not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(&quot;model&quot;)&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;script&gt;alert(&quot;class&quot;)" in html


def test_terminal_tables_fit_100_columns(reported):
    _, _, out = reported
    for what in ("verify", "runs"):
        table = [line for line in out[what].splitlines() if not line.startswith(("wrote ", "every ", "note: "))]
        widths = [len(line) for line in table]  # the table's lines: the ones after it name paths
        assert max(widths) <= TERMINAL, (what, out[what])
    assert "every figure:" in out["verify"] and "|Δ| / allowed ≤ 1" in out["verify"]
    assert "p99 |Δ|" in out["verify --wide"] and max(len(x) for x in out["verify --wide"].splitlines()) > TERMINAL
    assert "reproduce-resnet20/seed-1" in out["runs"] and "every column: --wide" in out["runs"], out["runs"]
    assert "exports" in out["runs --wide"].splitlines()[1]


def test_bad_input_is_one_line(tmp_path, deployed):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run("report", empty), "no runs under", "toolkit train")
    assert_one_line_error(run("report", tmp_path / "nowhere"), "does not exist")
    assert_one_line_error(run("report", deployed, "--out", tmp_path), "is a folder", "report.html")
    assert_one_line_error(run("report", deployed, "--out", tmp_path / "no" / "r.html"), "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    with unwritable(locked):
        assert_one_line_error(run("report", deployed, "--out", locked / "r.html"), "cannot write")
    assert not (locked / "r.html").exists()


def test_corrupt_and_older_files_become_notes(tmp_path, deployed):
    run_dir = tmp_path / "run"
    shutil.copytree(deployed, run_dir, ignore=_MODELS)
    (run_dir / "parity.json").write_text('{"entries": [')  # cut off mid-write
    (run_dir / "bench.json").write_text(json.dumps({"model": "tutorial-cnn", "results": []}))  # an older layout
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 2, "test_ac')
    r = run("report", run_dir, "--out", tmp_path / "r.html")
    assert r.exit_code == 0, r.output
    assert "parity.json: cannot be read (JSONDecodeError" in r.stderr
    assert "bench.json: 'inference' is missing; run `toolkit bench` again to rewrite it; left out" in r.stderr
    assert "metrics.jsonl line 2 is cut or not a JSON object" in r.stderr
    assert "training files cannot be read" not in r.stderr  # the run keeps its row in the runs table
    html = (tmp_path / "r.html").read_text()
    assert '<section id="notes"' in html and '<section id="curves">' in html and '<section id="bench">' not in html


@pytest.fixture(scope="module")
def page_in_chromium(reported):
    if why := browser.missing():
        pytest.skip(f"no headless browser: {why}")
    root, page, _ = reported
    with browser.chromium() as driver:
        driver.get(page.resolve().as_uri())
        yield driver, root, page


def _cells(driver, selector: str) -> list[dict]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(function (e) {"
        "  var figure = e.querySelector('.figure');"
        "  return {data: Object.assign({}, e.dataset), text: e.textContent, figure: figure && figure.textContent}; });",
        selector,
    )


def test_the_page_loads_offline_without_errors(page_in_chromium, tmp_path):
    driver, _, page = page_in_chromium
    errors = [m for m in driver.get_log("browser") if m["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    assert browser.requests(driver) == [page.resolve().as_uri()]  # the page itself, nothing else
    width, inner = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert inner == browser.VIEWPORT[0] and width <= inner  # no horizontal page overflow at 1280x800
    shot = browser.screenshot(driver, tmp_path / "report.png", 1600)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_the_numbers_shown_equal_the_json(page_in_chromium):
    driver, root, _ = page_in_chromium
    parity = json.loads((root / "resnet20" / "parity.json").read_text())
    cells = {(c["data"]["format"], c["data"]["runtime"]): c for c in _cells(driver, "td[data-verdict]")}
    shown = 0
    for e in parity["entries"]:
        cell = cells.get((e["format"], e["runtime"]))  # the evil copy has the same cells: one per key is enough
        assert cell is not None, e["format"]
        verdict = "pass" if e["passed"] else "FAIL"
        assert cell["data"]["verdict"] == verdict and cell["text"].startswith(verdict)
        figure = float(cell["data"]["figure"])
        assert figure in (e["max_abs"], e["max_rel"], e["mean_rel"], (e.get("fp32_excess") or {}).get("ratio"))
        assert float(cell["figure"]) == pytest.approx(figure, rel=5e-3, abs=1e-12)
        shown += 1
    assert shown == len(parity["entries"])
    bench = json.loads((root / "resnet20" / "bench.json").read_text())
    cells = {(c["data"]["target"], int(c["data"]["batch"])): c for c in _cells(driver, "td.img-per-s")}
    for case in bench["inference"]:
        for r in case["results"]:
            text = cells[(case["label"], r["batch_size"])]["text"]
            assert float(text.replace(",", "")) == pytest.approx(r["img_per_s"], abs=0.5)
    rec = bench["recommendation"]
    assert driver.find_element("css selector", "p.recommendation").text == rec["text"]
    best = _cells(driver, "td.img-per-s.best")
    assert {(c["data"]["target"], int(c["data"]["batch"])) for c in best} == {(rec["target"], rec["batch_size"])}
    stats = json.loads((root / "reproduce-resnet20" / "reproduce.json").read_text())["stats"]
    interval = _cells(driver, "span.interval")[0]
    lo, hi = (float(v) for v in re.findall(r"[\d.]+", interval["text"])[:2])
    assert (lo, hi) == (pytest.approx(stats["ci95"][0], abs=0.005), pytest.approx(stats["ci95"][1], abs=0.005))


def test_markup_renders_as_text_in_the_browser(page_in_chromium):
    driver, _, _ = page_in_chromium
    body = driver.find_element("tag name", "body").text
    for evil in (EVIL_RUN, EVIL_MODEL, EVIL_CLASS):
        assert evil in body
    assert driver.execute_script("return document.scripts.length") == 1
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0


def test_a_column_sorts_when_clicked(page_in_chromium):
    driver, _, _ = page_in_chromium
    column = 6  # test %: numbers sort by value, absent ones last
    header = driver.find_elements("css selector", "#runs table.sortable th")[column - 1]
    selector = f"#runs table.sortable tbody tr td:nth-child({column})"
    for expected_descending in (True, False):
        header.click()
        texts = [c["text"] for c in _cells(driver, selector)]
        values = [float(t) for t in texts if t != "-"]
        assert len(values) >= 4 and values == sorted(values, reverse=expected_descending)
        assert texts[: len(values)] == [t for t in texts if t != "-"]  # the absent ones after every figure


def _paths(value, prefix=(), depth=3):
    """Every key path into a JSON value, through the first item of each list, `depth` levels deep."""
    if depth == 0:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value[:1]) if isinstance(value, list) else ()
    for key, child in items:
        yield (*prefix, key)
        yield from _paths(child, (*prefix, key), depth - 1)


def test_no_file_content_crashes_the_report(reported, tmp_path):
    """Every key of every file deleted, or its value made null, a string or a list, one at a time: the page is
    still written (at most with a note), never a traceback. A schema_version this toolkit does not read is the
    one exception: one line naming the file (RecordVersionError, test_run_records.py), no page."""
    from toolkit.report import build_report
    from toolkit.run.records import SCHEMA_KEY, RecordVersionError

    root, _, _ = reported
    files = [root / "resnet20" / n for n in ("summary.json", "manifest.json", "parity.json", "bench.json")]
    files += [root / "reproduce-resnet20" / "reproduce.json", root / "sweeps" / "resnet20-sweep" / "sweep.json"]
    mutations = 0
    for path in files:
        original = json.loads(path.read_text())
        folder = tmp_path / "case"
        for keys in _paths(original):
            for replacement in ("delete", None, "x", [], {}):
                data = json.loads(json.dumps(original))
                parent = data
                for k in keys[:-1]:
                    parent = parent[k]
                if replacement == "delete":
                    del parent[keys[-1]]
                else:
                    parent[keys[-1]] = replacement
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                (folder / path.name).write_text(json.dumps(data))
                if path.name in ("summary.json", "manifest.json"):  # read only beside a run's metrics
                    shutil.copy(root / "resnet20" / "metrics.jsonl", folder)
                mutations += 1
                if keys == (SCHEMA_KEY,) and replacement != "delete":
                    with pytest.raises(RecordVersionError, match=f"{path.name}: unknown {SCHEMA_KEY}"):
                        build_report([folder], folder / "r.html")
                    assert not (folder / "r.html").exists()
                    continue
                result = build_report([folder], folder / "r.html")
                assert (folder / "r.html").stat().st_size > 0, (path.name, keys, replacement)
        assert result is not None
    assert mutations > 500
