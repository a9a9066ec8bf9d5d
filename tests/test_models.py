import pytest
import torch

from toolkit.core.errors import ConfigError
from toolkit.models import REGISTRY, create_model, get_spec, list_models

# Parameter counts for 10 classes: tutorial = 1,792 + 73,856 + 25,690,368 (fc1) + 2,570; the ResNets
# match the widely used CIFAR implementations (resnet20 0.27 M, resnet56 0.85 M); resnet18 = torchvision's
# 11,689,512 minus the 7x7 stem and the 1000-way head, plus a 3x3 stem and a 10-way head.
PARAMS = {
    "tutorial-cnn": 25_768_586,
    "resnet20": 269_722,
    "resnet56": 853_018,
    "fast-cnn": 1_972_792,
    "resnet18": 11_173_962,
}


def test_registry_lists_every_model_with_a_recipe():
    assert list_models() == list(PARAMS)
    for spec in REGISTRY.values():
        assert spec.recipe.batch_size > 0 and spec.recipe.lr > 0 and spec.source
    assert get_spec("resnet20").reference_accuracy == 91.25
    assert get_spec("resnet56").reference_accuracy == 93.03
    assert get_spec("fast-cnn").reference_accuracy == 94.01
    assert get_spec("tutorial-cnn").recipe.optimizer == "adam"


@pytest.mark.parametrize("name", list(PARAMS))
def test_shapes_and_parameter_counts(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 10)
        assert create_model(name, num_classes=100).eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)


class SeedModel(torch.nn.Module):
    """The tutorial's network exactly as written, shape bug included."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3)
        self.conv2 = torch.nn.Conv2d(64, 128, kernel_size=3)
        self.fc1 = torch.nn.Linear(128 * 10 * 10, 256)
        self.fc2 = torch.nn.Linear(256, 10)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        x = x.view(-1, 128 * 10 * 10)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def test_seed_shape_bug_and_our_fix():
    seed = SeedModel()
    with pytest.raises(RuntimeError):
        seed(torch.randn(64, 3, 32, 32))  # the tutorial's batch size
    assert seed(torch.randn(25, 3, 32, 32)).shape == (196, 10)  # silently wrong
    model = create_model("tutorial-cnn")
    assert model.fc1.in_features == 128 * 28 * 28
    assert model(torch.randn(25, 3, 32, 32)).shape == (25, 10)


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="choose one of: tutorial-cnn, resnet20"):
        create_model("vgg")
