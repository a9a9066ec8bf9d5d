"""core/: run folders (locking, newest trained run, stale temp files), atomic files, errors, devices."""

import resource
import subprocess
import sys

import pytest

from tests.helpers import kill_self, report_and_exit, tiny_run, unwritable
from toolkit.core.device import pick_device
from toolkit.core.errors import DeviceError, RunFolderError, ToolkitError, first_line
from toolkit.core.files import atomic_path, write_text
from toolkit.core.isolate import run_isolated
from toolkit.run.folder import claim_run_dir, ensure_writable, latest_run
from toolkit.train.checkpoint import write_untrained
from toolkit.train.config import TrainConfig


def test_first_line_of_an_empty_message_names_the_type():
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(RuntimeError("\n\n  second line\nthird")) == "second line"
    assert first_line(RuntimeError("step \x1b[96m3/3\x1b[0m failed")) == "step 3/3 failed"


def test_a_claimed_run_folder_refuses_a_second_claim(tmp_path):
    folder = tmp_path / "run"
    with claim_run_dir(folder, resuming=False):
        with pytest.raises(RunFolderError, match="is in use by another toolkit process"):
            with claim_run_dir(folder, resuming=True):
                pass
    with claim_run_dir(folder, resuming=True):  # released on exit
        pass


def test_a_failed_start_leaves_no_empty_folder(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with claim_run_dir(tmp_path / "new", resuming=False):
            raise ZeroDivisionError("a failure after the claim")
    assert not (tmp_path / "new").exists()


def test_default_run_names_are_unique():
    names = {TrainConfig(model="resnet20").resolved().run_name for _ in range(20)}
    assert len(names) == 20


def test_two_runs_started_together_into_one_folder(tmp_path):
    """Both used to report success while overwriting each other; now exactly one trains, the other says why."""
    args = [
        sys.executable,
        "-m",
        "toolkit",
        "train",
        "--model",
        "resnet20",
        "--dataset",
        "synthetic",
        "--limit-train",
        "256",
        "--limit-test",
        "64",
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--out",
        str(tmp_path),
        "--run-name",
        "same",
        "--progress",
        "none",
    ]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    err = next(o[1] for p, o in zip(procs, outs, strict=True) if p.returncode == 1)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "is in use by another toolkit process" in err or "already holds a run" in err


def test_latest_run_skips_untrained_bench_folders(tmp_path):
    tiny_run(tmp_path, "resnet20", "trained")
    write_untrained("resnet20", tmp_path / "bench-resnet20")  # written later, but nobody trained it
    assert latest_run(tmp_path) == tmp_path / "trained"
    with pytest.raises(RunFolderError, match="no trained run"):
        latest_run(tmp_path / "bench-resnet20")


def test_atomic_write_failure_is_one_line_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with unwritable(tmp_path):
        with pytest.raises(ToolkitError, match="cannot write .*report.json"):
            write_text(target, "new")
        with pytest.raises(RunFolderError, match="cannot write to"):
            ensure_writable(tmp_path)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_file_size_limit_during_a_write(tmp_path):
    """RLIMIT_FSIZE makes writes fail with EFBIG (Python ignores SIGXFSZ): the error names the file."""
    target = tmp_path / "big.txt"

    def write_big():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, hard))
        try:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"x" * (1 << 20))
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    with pytest.raises(ToolkitError, match="cannot write .*big.txt.*(File too large)"):
        write_big()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("cpu:x", "only cuda takes an index"),
        ("cpu:0", "only cuda takes an index"),
        ("cuda:x", "only cuda takes an index, as cuda:0"),
        ("tpu", "unknown device 'tpu'"),
    ],
)
def test_bad_device_strings(name, fragment):
    with pytest.raises(DeviceError, match=fragment):
        pick_device(name)


def test_a_benchmark_process_that_dies_is_an_error_within_seconds():
    import time

    t0 = time.monotonic()
    with pytest.raises(ToolkitError, match="case X: its process died from signal SIGKILL"):
        run_isolated(kill_self, {}, label="case X", timeout_s=600)
    assert time.monotonic() - t0 < 30
    assert run_isolated(report_and_exit, {"value": 3}) == {"value": 3}
