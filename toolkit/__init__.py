"""toolkit: train CIFAR CNNs, export them to TorchScript and ONNX, verify runtimes agree, benchmark them.

Every CLI command is one call here:

    import toolkit
    run = toolkit.train(model="resnet20", epochs=2, data_dir="data")   # -> TrainResult
    toolkit.export(run.run_dir)                                        # -> ExportResult
    result = toolkit.verify(run.run_dir)                               # -> ParityResult, truthy on pass
    report = toolkit.run_bench(run.run_dir)                            # -> dict (bench.json)
"""

__version__ = "0.1.0"

from toolkit.benchrun import BenchConfig, run_bench  # noqa: E402
from toolkit.config import TrainConfig  # noqa: E402
from toolkit.export import export  # noqa: E402
from toolkit.models import create_model, list_models  # noqa: E402
from toolkit.parity import Thresholds, verify  # noqa: E402
from toolkit.train import evaluate, train  # noqa: E402
from toolkit.tta import time_to_accuracy  # noqa: E402

__all__ = ["BenchConfig", "Thresholds", "TrainConfig", "create_model", "evaluate", "export", "list_models",
           "run_bench", "time_to_accuracy", "train", "verify"]
