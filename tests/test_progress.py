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
    amp="off",
    resumed_from_epoch=None,
    run_dir="artifacts/run",
)


@pytest.mark.parametrize(("threads", "said"), [(1, "1 thread,"), (2, "2 threads,")])
def test_the_start_line_says_what_runs_where(threads, said):
    out = io.StringIO()
    PlainReporter(stream=out).start({**INFO, "threads": threads})
    line = out.getvalue()
    assert line.count("\n") == 1 and said in line
    assert line.startswith("training tutorial-cnn on cpu x1 (45000 train / 5000 val / 10000 test images")
    assert line.rstrip().endswith("-> artifacts/run")


def test_a_resumed_run_says_where_it_resumed():
    out = io.StringIO()
    PlainReporter(stream=out).start({**INFO, "threads": 2, "val_size": None, "resumed_from_epoch": 3})
    assert "(45000 train / 10000 test images, 2 threads, amp off, resumed after epoch 3)" in out.getvalue()
