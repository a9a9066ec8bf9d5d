"""airbench94 (Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv 2404.00498), written
from the paper's description.

A 2x2 convolution (3 -> 24 channels, no padding, with bias) whose weights come from the data and never
train: the 12 eigenvectors of the training patches' uncentred second-moment matrix, each scaled by
1/sqrt(eigenvalue + 5e-4), and their negations (`init_from_data`). Then GELU and three blocks of widths
64/256/256: 3x3 'same' conv (no bias, first C_in filters the identity) -> max-pool 2 -> BatchNorm -> GELU ->
3x3 conv -> BatchNorm -> GELU (31 -> 15 -> 7 -> 3). BatchNorm has eps 1e-12, PyTorch momentum 0.4 and its
scale fixed at 1 (only the bias trains). Head: max-pool 3, Linear 256 -> 10 without bias, logits x 1/9.
About 1.97 M parameters and 0.24 GFLOP per image. The training recipe (lookahead, lr x64 for BatchNorm
biases, alternating flips, TTA, ...) is declared in the registry, not here.
"""

import torch
from torch import nn

WHITEN_EPS = 5e-4


class _BatchNorm(nn.BatchNorm2d):
    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)  # scale stays 1; only the bias trains


class _Conv(nn.Conv2d):
    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.in_channels])  # the block starts close to an identity map


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1, self.pool, self.norm1 = _Conv(cin, cout), nn.MaxPool2d(2), _BatchNorm(cout)
        self.conv2, self.norm2, self.act = _Conv(cout, cout), _BatchNorm(cout), nn.GELU()

    def forward(self, x):
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class FastCNN(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)):
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, kernel_size=2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)  # set from the data by init_from_data, never trained
        nn.init.zeros_(self.whiten.bias)  # as the authors' code: the bias starts at zero and trains 3 epochs
        self.act = nn.GELU()
        self.blocks = nn.Sequential(_Block(24, widths[0]), _Block(widths[0], widths[1]), _Block(widths[1], widths[2]))
        self.pool = nn.MaxPool2d(3)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scale = 1 / 9  # keeps early softmax outputs soft

    def forward(self, x):
        x = self.blocks(self.act(self.whiten(x)))
        return self.head(self.pool(x).flatten(1)) * self.scale

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Whitening filters from normalised, unaugmented training images (N, 3, 32, 32)."""
        patches = whitening_patches(images)
        flat = patches.reshape(len(patches), -1).double()
        second_moment = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(second_moment)  # ascending; columns are vectors
        filters = eigenvectors.T / torch.sqrt(eigenvalues + WHITEN_EPS)[:, None]
        filters = filters.flip(0).reshape(-1, *patches.shape[1:]).to(self.whiten.weight)
        self.whiten.weight.copy_(torch.cat([filters, -filters]))


def whitening_patches(images: torch.Tensor, size: int = 2) -> torch.Tensor:
    """Every size x size patch of every image, as (N * positions, C, size, size), float."""
    c = images.shape[1]
    return images.unfold(2, size, 1).unfold(3, size, 1).transpose(1, 3).reshape(-1, c, size, size).float()
