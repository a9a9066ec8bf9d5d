"""The run folder's records (toolkit/run/records.py): every JSON file a stage writes carries a schema version,
reads back as its typed record, and a file of a version this toolkit does not know is one line, exit 1, and
nothing written, whichever command meets it."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.run.folder import BENCH, MANIFEST, METRICS, PARITY, SUMMARY
from toolkit.run.records import (
    RECORDS,
    SCHEMA_KEY,
    Bench,
    Parity,
    RecordVersionError,
    RunFileError,
    Summary,
    read_metrics,
    write_metrics,
)

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_file_the_stages_wrote_is_a_record_of_the_current_version(deployed):
    """The deployed run was trained, exported, and (in test_deploy) may be verified: each file it holds reads
    back as its record, with the version the writer stamped."""
    found = [r for r in RECORDS if r.path(deployed).is_file()]
    assert {r.FILE for r in found} >= {SUMMARY, MANIFEST}
    for record in found:
        assert json.loads(record.path(deployed).read_text())[SCHEMA_KEY] == record.VERSION
        assert record.load(deployed).data  # typed fields checked on the way in
    assert all(json.loads(line)[SCHEMA_KEY] == 1 for line in (deployed / METRICS).read_text().splitlines())
    assert Summary.load(deployed).model == "tutorial-cnn"


def test_a_file_from_before_versions_reads_as_version_1_and_a_bad_field_is_named(tmp_path):
    data = {"passed": True, "entries": [], "reference": {"device": "cpu"}}
    (tmp_path / PARITY).write_text(json.dumps(data))  # as verify wrote it before schema_version existed
    parity = Parity.load(tmp_path)
    assert parity.passed is True and parity.to_dict() == {SCHEMA_KEY: 1, **data}
    (tmp_path / PARITY).write_text(json.dumps({**data, "passed": "yes"}))
    with pytest.raises(RunFileError, match=r"'passed' is \"yes\", not true/false or null; run `toolkit verify` again"):
        Parity.load(tmp_path)
    with pytest.raises(RunFileError, match="'inference' is missing; run `toolkit bench` again"):
        Bench.write(tmp_path, {"training": []})  # a writer cannot write what no reader could read
    assert not (tmp_path / BENCH).exists()


@pytest.mark.parametrize("version", [2, 99, 0, "1", None])
def test_metrics_line_of_an_unknown_version_is_refused(tmp_path, version):
    write_metrics(tmp_path, [{"epoch": 1, "test_acc": 50.0}])
    assert read_metrics(tmp_path) == ([{"epoch": 1, "test_acc": 50.0}], [])
    (tmp_path / METRICS).write_text(json.dumps({SCHEMA_KEY: version, "epoch": 1}) + "\n")
    with pytest.raises(RecordVersionError, match=f"{METRICS} line 1: (unknown {SCHEMA_KEY}|{SCHEMA_KEY} 2|.*newer)"):
        read_metrics(tmp_path)


@pytest.mark.parametrize("name", [SUMMARY, MANIFEST, PARITY, BENCH, METRICS])
def test_a_newer_file_is_one_line_exit_1_and_nothing_written(tmp_path, deployed, name):
    """report, runs, verify and predict meet a file of schema_version 7 in turn: each stops in one line naming
    the file and saying to upgrade, and writes nothing (no page, no parity.json, no prediction)."""
    folder = tmp_path / "run"
    shutil.copytree(deployed, folder)
    if not (folder / PARITY).is_file():
        (folder / PARITY).write_text(json.dumps({"passed": True, "entries": [], "reference": {}}))
    if not (folder / BENCH).is_file():
        (folder / BENCH).write_text(json.dumps({"inference": [], "training": []}))
    path = folder / name
    if name == METRICS:
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines[:-1], json.dumps({**json.loads(lines[-1]), SCHEMA_KEY: 7})]) + "\n")
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), SCHEMA_KEY: 7}))
    image = tmp_path / "image.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(image)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    upgrade = f"{SCHEMA_KEY} 7 was written by a newer toolkit"
    page = tmp_path / "page.html"
    assert_one_line_error(run("report", folder, "--out", page), name, upgrade)
    assert not page.exists()
    if name in (SUMMARY, METRICS, MANIFEST, PARITY):  # what `toolkit runs` reads
        assert_one_line_error(run("runs", "--out", tmp_path), name, upgrade)
    if name == MANIFEST:  # what verify and predict check every file against
        assert_one_line_error(run("verify", folder, "--limit", "16", "--runtime", "onnxruntime"), name, upgrade)
        assert_one_line_error(
            run("predict", image, "--run", folder, "--runtime", "onnxruntime", "--format", "onnx"), name, upgrade
        )
    if name in (PARITY, BENCH):  # what predict's auto choice joins
        assert_one_line_error(run("predict", image, "--run", folder, "--json"), name, upgrade)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_no_file_outside_the_run_package_names_a_run_file_by_its_string():
    """A run file's name is a constant in run/folder.py; a stage that spells it out again would drift from it.
    Docstrings and comments may name the files; code may not."""
    import ast
    from pathlib import Path

    import toolkit
    from toolkit.run import folder

    names = {v for k, v in vars(folder).items() if k.isupper() and isinstance(v, str) and "." in v[1:]}
    assert {"parity.json", "bench.json", "metrics.jsonl", "checkpoint.pt"} <= names
    root = Path(toolkit.__file__).parent
    found = []
    for path in root.rglob("*.py"):
        if path.parent.name == "run":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                found += [f"{path.relative_to(root)}:{node.lineno} {n}" for n in names if n in node.value]
    assert not found, found
