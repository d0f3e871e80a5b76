"""Small ResNet for 32x32 RGB images: a stem, three one-block stages, global pooling and a classifier.

Input x is (batch_size, 3, 32, 32) float32; the output is (batch_size, 10) float32 logits. Stem:
3x3 conv (3 -> width), batch norm, ReLU. Stages of widths width, 2 * width, 4 * width; the last two
downsample with stride 2 and a 1x1 projection shortcut. Batch norms use random running statistics
(the model is put in eval mode in __init__) and can be folded into the convolutions.
"""
import torch
import torch.nn as nn

batch_size = 32
width = 16
num_classes = 10
image_size = 32

SIZES = {
    "gpu": {"batch_size": 384, "width": 64},
    "npu": {"batch_size": 384, "width": 64},
}


def batch_norm(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(bn.weight, mean=1.0, std=0.1)
    nn.init.normal_(bn.bias, std=0.1)
    nn.init.normal_(bn.running_mean, std=0.1)
    nn.init.uniform_(bn.running_var, 0.5, 1.5)
    return bn


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = batch_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = batch_norm(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), batch_norm(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class Model(nn.Module):
    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), batch_norm(width), nn.ReLU())
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
        )
        self.fc = nn.Linear(4 * width, num_classes)
        self.eval()  # batch norm uses the running statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def get_inputs():
    return [torch.randn(batch_size, 3, image_size, image_size)]


def get_init_inputs():
    return [width, num_classes]


def get_flops():
    p = image_size * image_size  # pixels at full resolution
    w = width
    stem = 2 * p * 3 * w * 9
    stage1 = 2 * (2 * p * w * w * 9)
    stage2 = 2 * (p // 4) * (w * 2 * w * 9 + 2 * w * 2 * w * 9 + w * 2 * w)
    stage3 = 2 * (p // 16) * (2 * w * 4 * w * 9 + 4 * w * 4 * w * 9 + 2 * w * 4 * w)
    return batch_size * (stem + stage1 + stage2 + stage3 + 2 * 4 * w * num_classes)
