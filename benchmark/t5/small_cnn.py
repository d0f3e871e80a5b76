"""Small CNN classifier for 32x32 RGB images: two conv-ReLU-maxpool stages and two linear layers, float32.

Input x is (batch_size, 3, 32, 32) float32; the output is (batch_size, 10) float32 logits. The convs
are 3x3 with padding 1 (3 -> channels -> 2 * channels), each followed by ReLU and 2x2 max pooling; then
flatten, nn.Linear(2 * channels * 8 * 8, 128), ReLU, nn.Linear(128, 10).
"""
import torch
import torch.nn as nn

batch_size = 32
channels = 32
image_size = 32
num_classes = 10

SIZES = {
    "gpu": {"batch_size": 1024, "channels": 64},
    "npu": {"batch_size": 1024, "channels": 64},
}


class Model(nn.Module):
    def __init__(self, channels: int, image_size: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        flat = 2 * channels * (image_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def get_inputs():
    return [torch.randn(batch_size, 3, image_size, image_size)]


def get_init_inputs():
    return [channels, image_size, num_classes]


def get_flops():
    pixels = image_size * image_size
    conv1 = 2 * pixels * channels * 3 * 9
    conv2 = 2 * (pixels // 4) * 2 * channels * channels * 9
    fc = 2 * (2 * channels * pixels // 16) * 128 + 2 * 128 * num_classes
    return batch_size * (conv1 + conv2 + fc)
