"""toolkit: train CIFAR CNNs, export them to TorchScript and ONNX, verify runtimes agree, benchmark them."""

__version__ = "0.1.0"
