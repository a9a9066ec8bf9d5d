"""Small trained runs for export/verify/bench tests: one step on a synthetic set, in seconds."""

from pathlib import Path

from toolkit.train import train

TINY = dict(dataset="synthetic", limit_train=32, limit_test=64, batch_size=32, eval_batch_size=64, epochs=1)


def tiny_run(out: Path, model: str = "resnet20", name: str | None = None) -> Path:
    name = name or model
    train(model=model, out=str(out), run_name=name, **TINY)
    return Path(out) / name
