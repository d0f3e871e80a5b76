"""Strided 2-D convolution (3x3, stride 2, padding 1) with bias, followed by ReLU, on NCHW float32.

Input is (batch_size, in_channels, height, width) float32; the output is (batch_size, out_channels,
height / 2, width / 2) float32, as in a downsampling stage of a CNN. Fusing the ReLU into the
convolution's epilogue saves a full read and write of the output.
"""
import torch
import torch.nn as nn

batch_size = 16
in_channels = 32
out_channels = 64
height = 64
width = 64

SIZES = {
    "gpu": {"batch_size": 32, "in_channels": 128, "out_channels": 256, "height": 128, "width": 128},
    "npu": {"batch_size": 32, "in_channels": 128, "out_channels": 256, "height": 128, "width": 128},
}


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def get_inputs():
    return [torch.randn(batch_size, in_channels, height, width)]


def get_init_inputs():
    return [in_channels, out_channels]


def get_flops():
    outputs = batch_size * out_channels * (height // 2) * (width // 2)
    return 2 * outputs * in_channels * 9 + outputs
