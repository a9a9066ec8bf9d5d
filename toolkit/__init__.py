"""toolkit: train CIFAR CNNs, export them to every format in the registry (`toolkit formats`), verify every
runtime agrees, benchmark them.

Every CLI command is one call here:

    import toolkit
    run = toolkit.train(model="resnet20", epochs=2, data_dir="data")   # -> TrainResult
    toolkit.export(run.run_dir)                                        # -> ExportResult
    result = toolkit.verify(run.run_dir)                               # -> ParityResult, truthy on pass
    toolkit.predict(["cat.png"], run_dir=run.run_dir)                  # -> PredictResult
    report = toolkit.run_bench(run.run_dir)                            # -> dict (bench.json)

Stages load on first use (PEP 562), so `import toolkit` and `toolkit --help` stay light. The stage
packages toolkit.train, toolkit.export and toolkit.verify are themselves callable as their entry functions.
"""

from __future__ import annotations

from toolkit.core.lazy import lazy_attributes
from toolkit.core.version import __version__

_LAZY = {
    "train": "toolkit.train",
    "export": "toolkit.export",
    "verify": "toolkit.verify",
    "predict": "toolkit.predict",
    "sweep": "toolkit.experiments.sweep:sweep",
    "list_runs": "toolkit.experiments.runs:list_runs",
    "TrainConfig": "toolkit.train.config:TrainConfig",
    "reproduce": "toolkit.experiments.reproduce:reproduce",
    "evaluate": "toolkit.train.evaluation:evaluate",
    "Thresholds": "toolkit.verify.parity:Thresholds",
    "BenchConfig": "toolkit.bench.run:BenchConfig",
    "run_bench": "toolkit.bench.run:run_bench",
    "time_to_accuracy": "toolkit.experiments.time_to_accuracy:time_to_accuracy",
    "create_model": "toolkit.models:create_model",
    "list_models": "toolkit.models:list_models",
}
__all__ = ["__version__", *_LAZY]


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
