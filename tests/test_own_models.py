"""Models from outside the registry: factory paths with arguments, toolkit.models plugins, and the rule that a
checkpoint never makes the toolkit import code the user did not name."""

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tests.test_cli_train import assert_one_line_error
from toolkit.cli import app
from toolkit.core.errors import ConfigError
from toolkit.models.external import TRUST_ENV, parse_model_args
from toolkit.train.config import load_config_file

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
TINY = "tests.own_models:tiny"
SMALL = ("--dataset", "synthetic", "--limit-train", "64", "--limit-test", "64", "--batch-size", "32",
         "--epochs", "1", "--progress", "none")  # fmt: skip


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True)
def children_import_tests(monkeypatch):
    """Child processes (verify's runtimes) import the factories from this checkout, as a user's package would be."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def test_model_args_are_toml_values_and_bad_syntax_is_named():
    assert parse_model_args(["num_classes=10", "act=relu", 'name="a b"', "p=0.5", "w=[1, 2]", "ok=true"]) == {
        "num_classes": 10, "act": "relu", "name": "a b", "p": 0.5, "w": [1, 2], "ok": True,
    }  # fmt: skip
    for bad in ("width", "=3", "2x=1", "w=[1,", "w=a b", "w="):
        with pytest.raises(ConfigError, match="--model-arg"):
            parse_model_args([bad])


def test_config_file_takes_model_args_as_a_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(f'model = "{TINY}"\ndataset = "synthetic"\n[model_args]\nwidth = 4\n')
    assert load_config_file(path).model_args == {"width": 4}
    path.write_text(f'model = "{TINY}"\nmodel_args = 4\n')
    with pytest.raises(ConfigError, match="'model_args' must be a table"):
        load_config_file(path)


def forget_trusted(monkeypatch):
    """Each CLI call is its own process in real use; here they share one, whose trust a --model call set."""
    monkeypatch.setenv(TRUST_ENV, "")


def test_a_factory_model_goes_through_the_whole_flow(tmp_path, monkeypatch):
    r = run("train", "--model", TINY, "--model-arg", "width=6", "--image-size", "40", *SMALL, "--out", tmp_path,
            "--run-name", "own")  # fmt: skip
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "own"
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["model"]["kind"] == "factory" and ckpt["model"]["args"] == {"width": 6}
    assert ckpt["input"]["shape"] == [3, 40, 40] and ckpt["state_dict"]["0.weight"].shape[0] == 6
    # Without --model nothing is imported: one line naming the factory and how to allow it, nothing written.
    r = run("export", run_dir, "--format", "onnx")
    assert_one_line_error(r, TINY, "width=6", f"--model {TINY}")
    assert not (run_dir / "model.onnx").exists()
    r = run("export", run_dir, "--format", "torchscript,onnx", "--model", TINY)
    assert r.exit_code == 0, r.output
    forget_trusted(monkeypatch)
    r = run("verify", run_dir, "--runtime", "onnxruntime")
    assert_one_line_error(r, f"--model {TINY}")
    r = run("export", run_dir, "--format", "torchscript,onnx", "--model", TINY)
    assert r.exit_code == 0, r.output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["model_spec"] == {"kind": "factory", "args": {"width": 6}, "package": "tests", "version": None}
    assert manifest["input"]["shape"] == [3, 40, 40]
    r = run("verify", run_dir, "--model", TINY, "--runtime", "eager", "--runtime", "onnxruntime")
    assert r.exit_code == 0, r.output
    assert {e["runtime"] for e in json.loads((run_dir / "parity.json").read_text())["entries"]} >= {"onnxruntime"}
    image = tmp_path / "x.png"
    Image.new("RGB", (64, 50), (200, 30, 30)).save(image)
    for runtime in ("eager", "onnxruntime"):
        r = run("predict", image, "--run", run_dir, "--runtime", runtime, "--model", TINY, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout.splitlines()[0])["top"][0]["class"].startswith("class")
    forget_trusted(monkeypatch)
    r = run("predict", image, "--run", run_dir, "--runtime", "eager")  # the child rebuilds: refused there too
    assert r.exit_code == 1 and f"--model {TINY}" in r.output
    r = run("train", "--resume", run_dir, "--epochs", "2", "--progress", "none")
    assert_one_line_error(r, f"--model {TINY}")
    r = run("train", "--resume", run_dir, "--epochs", "2", "--progress", "none", "--model", TINY)
    assert r.exit_code == 0, r.output
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2


@pytest.fixture(scope="module")
def exported_resnet(tmp_path_factory):
    """A small trained and exported resnet20 run, made once for the tests below (each edits a copy)."""
    out = tmp_path_factory.mktemp("resnet")
    r = run("train", "--model", "resnet20", *SMALL, "--out", out, "--run-name", "evil")
    assert r.exit_code == 0, r.output
    assert run("export", out / "evil", "--format", "onnx").exit_code == 0
    return out / "evil"


@pytest.fixture
def os_system_run(exported_resnet, tmp_path):
    """A copy of that run whose checkpoint was edited to name os:system as its model's factory."""
    run_dir = tmp_path / "evil"
    shutil.copytree(exported_resnet, run_dir)
    marker = tmp_path / "pwned"
    path = run_dir / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"] = {**ckpt["model"], "name": "os:system", "kind": "factory", "args": {"command": f"touch {marker}"}}
    torch.save(ckpt, path)
    return run_dir, marker


@pytest.mark.parametrize(
    "command",
    [
        ("export", "{run}", "--format", "onnx"),
        ("verify", "{run}", "--runtime", "onnxruntime"),
        ("predict", "{image}", "--run", "{run}", "--runtime", "eager", "--allow-modified"),
        ("bench", "{run}", "--no-train", "--runtime", "onnxruntime", "--batch-sizes", "1"),
        ("train", "--resume", "{run}", "--epochs", "2"),
    ],
    ids=lambda c: c[0],
)
def test_a_checkpoint_naming_os_system_runs_nothing(os_system_run, tmp_path, command):
    run_dir, marker = os_system_run
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    r = run(*(c.format(run=run_dir, image=image) for c in command))
    assert r.exit_code == 1, r.output
    assert "os:system" in r.output and "--model os:system" in r.output and "nothing was imported" in r.output
    assert "Traceback" not in r.output
    assert not marker.exists()


@pytest.mark.parametrize(
    "record, fragment",
    [
        ({"kind": "registry"}, "registry model 'os:system', which this toolkit does not have"),
        ({"kind": "entry-point"}, "plugin that is not installed"),
        ({"kind": "pickle"}, "damaged"),
    ],
)
def test_a_checkpoint_cannot_disguise_a_factory(os_system_run, record, fragment):
    run_dir, marker = os_system_run
    path = run_dir / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"].update(record)
    torch.save(ckpt, path)
    assert_one_line_error(run("export", run_dir, "--format", "onnx"), fragment)
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--model", "tests.own_models:raises"), "the factory raised RuntimeError: out of ideas"),
        (("--model", "tests.own_models:not_a_module"), "returned a dict, not a torch.nn.Module"),
        (("--model", "tests.own_models:needs_depth"), "missing a required argument: 'depth'"),
        (("--model", "tests.own_models:NOT_CALLABLE"), "is a int, not a callable"),
        (("--model", "tests.own_models:nothing_here"), "has no attribute 'nothing_here'"),
        (("--model", "no_such_package.models:net"), "cannot import no_such_package.models"),
        (("--model", "tests.own_models:tiny", "--model-arg", "depth=3"), "unexpected keyword argument 'depth'"),
        (("--model", "tests.own_models:fixed_classes"), "gives (2, 5)"),
        (("--model", "tests.own_models:only_32", "--image-size", "48"), "cannot take 3x48x48 input"),
        (("--model", "tests.own_models:tiny", "--model-arg", "width"), "--model-arg 'width'"),
        (("--model", "resnet20", "--model-arg", "width=2"), "applies to models from outside the registry"),
        (("--model", "no-such-model"), "unknown model 'no-such-model'"),
        (("--model", "resnet20", "--image-size", "48", "--dataset", "cifar10"), "cifar10 images are 32x32"),
    ],
)
def test_a_bad_model_is_one_line_and_nothing_is_written(tmp_path, args, fragment):
    r = run("train", *SMALL, *args, "--out", tmp_path / "out")  # a repeated option: the last one counts
    assert_one_line_error(r, fragment)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


PLUGIN = """
from torch import nn
from toolkit.models import ModelSpec, Recipe

def build(num_classes):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

SPEC = ModelSpec("demo-net", build, "a plugin's net", 77.5, "Demo et al. 2026", Recipe(optimizer="adam", lr=2e-3,
                 batch_size=32, epochs=1))
"""


def test_a_plugin_adds_a_named_model_with_its_recipe(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "demo_plugin").mkdir(parents=True)
    (site / "demo_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "demo_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[toolkit.models]\ndemo-net = demo_plugin:SPEC\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")
    r = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    line = next(x for x in r.stdout.splitlines() if "demo-net" in x)
    assert "77.50%" in line and "adam lr 0.002" in line and "entry point of demo-plugin 0.3" in line
    r = run("train", "--model", "demo-net", "--dataset", "synthetic", "--limit-train", "64", "--limit-test", "64",
            "--progress", "none", "--out", tmp_path, "--run-name", "p")  # fmt: skip
    assert r.exit_code == 0, r.output
    ckpt = torch.load(tmp_path / "p" / "checkpoint.pt", weights_only=True)
    assert ckpt["model"]["kind"] == "entry-point" and ckpt["model"]["version"] == "0.3"
    assert ckpt["train_config"]["optimizer"] == "adam" and ckpt["train_config"]["lr"] == 2e-3  # its recipe
    # An installed plugin is trusted: no --model needed to rebuild it.
    assert run("export", tmp_path / "p", "--format", "onnx").exit_code == 0
    assert run("verify", tmp_path / "p", "--runtime", "onnxruntime").exit_code == 0


def test_a_model_that_versions_its_state_dict_rebuilds_from_its_checkpoint(tmp_path):
    """torchvision's MNASNet refuses weights without the per-module version torch keeps beside them."""
    from toolkit.models.external import trust
    from toolkit.run.checkpoint import load_checkpoint, model_from_checkpoint
    from toolkit.train.checkpoint import write_untrained

    name = "torchvision.models:mnasnet0_5"
    trust(name)
    write_untrained(name, tmp_path / "m", dataset="synthetic")
    ckpt = load_checkpoint(tmp_path / "m")
    assert ckpt["state_dict"]._metadata[""]["version"] == 2
    model_from_checkpoint(ckpt)  # raised "version should be set to 1 or 2 instead of None" before
