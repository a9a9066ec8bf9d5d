"""An airbench94-style fast CIFAR net (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds", 2024).

A 2x2 stem conv (24 channels) then three blocks of conv-BN-GELU, max-pool, conv-BN-GELU at widths
64/256/256, a global max-pool and a linear head scaled by 1/9: about 2.0 M parameters. The tricks of
airbench around the net (whitening init of the stem, lookahead, test-time flips, label smoothing schedule)
are not all reproduced here: the reference accuracy is airbench94's, our recipe is a plain SGD one.
"""

from torch import nn


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, momentum=0.4), nn.GELU()]


class FastCNN(nn.Module):
    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)):
        super().__init__()
        stem = 24
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 2, padding=0, bias=True), nn.GELU())
        blocks, cin = [], stem
        for w in widths:
            # airbench's ConvGroup: conv, pool, BN, GELU, then conv, BN, GELU at the pooled size.
            conv, bn, act = _conv_bn(cin, w)
            blocks += [conv, nn.MaxPool2d(2), bn, act, *_conv_bn(w, w)]
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(cin, num_classes, bias=False)
        self.scale = 1 / 9  # airbench's logit scale: keeps early softmax soft

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(self.pool(x).flatten(1)) * self.scale
