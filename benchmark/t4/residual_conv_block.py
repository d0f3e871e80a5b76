"""ResNet basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + x) with inference-mode batch norm, float32.

Input x is (batch_size, channels, height, width) float32; the output has the same shape. Both
convolutions are 3x3, stride 1, padding 1, without bias; each batch norm uses random running statistics
and affine parameters (the module is put in eval mode in __init__), so it folds into the convolution.
"""
import torch
import torch.nn as nn

batch_size = 16
channels = 64
height = 16
width = 16

SIZES = {
    "gpu": {"batch_size": 32, "channels": 128, "height": 64, "width": 64},
    "npu": {"batch_size": 32, "channels": 128, "height": 64, "width": 64},
}


class Model(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        for bn in (self.bn1, self.bn2):
            nn.init.normal_(bn.weight, mean=1.0, std=0.1)
            nn.init.normal_(bn.bias, std=0.1)
            nn.init.normal_(bn.running_mean, std=0.1)
            nn.init.uniform_(bn.running_var, 0.5, 1.5)
        self.eval()  # batch norm uses the running statistics

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + x)


def get_inputs():
    return [torch.randn(batch_size, channels, height, width)]


def get_init_inputs():
    return [channels]


def get_flops():
    conv = 2 * batch_size * channels * height * width * channels * 9
    return 2 * conv + 6 * batch_size * channels * height * width
