"""The plain progress lines toolkit train prints: what a user reads while a run goes."""

import io

import pytest

from toolkit.train.progress import PlainReporter

INFO = dict(
    model="tutorial-cnn",
    device="cpu",
    world_size=1,
    train_size=45000,
    val_size=5000,
    test_size=10000,
    speed="fp32, channels_last, eager (fastest of 2 timed on this machine in 3.1 s)",
    resumed_from_epoch=None,
    run_dir="artifacts/run",
)


@pytest.mark.parametrize(("threads", "said"), [(1, "1 thread)"), (2, "2 threads)")])
def test_the_start_lines_say_what_runs_where_and_with_which_switches(threads, said):
    out = io.StringIO()
    PlainReporter(stream=out).start({**INFO, "threads": threads})
    line, speed = out.getvalue().splitlines()
    assert said in line
    assert line.startswith("training tutorial-cnn on cpu x1 (45000 train / 5000 val / 10000 test images")
    assert line.rstrip().endswith("-> artifacts/run")
    assert speed == f"speed: {INFO['speed']}"


def test_a_resumed_run_says_where_it_resumed():
    out = io.StringIO()
    PlainReporter(stream=out).start({**INFO, "threads": 2, "val_size": None, "resumed_from_epoch": 3})
    assert "(45000 train / 10000 test images, 2 threads, resumed after epoch 3)" in out.getvalue()
