"""Convolutional autoencoder: two strided convs down to a latent map, two transposed convs back, float32.

Input x is (batch_size, 1, image_size, image_size) float32 in [0, 1); the output is the sigmoid
reconstruction of the same shape. Encoder: Conv2d(1, c, 3, stride 2, padding 1), ReLU,
Conv2d(c, 2c, 3, stride 2, padding 1), ReLU. Decoder: ConvTranspose2d(2c, c, 4, stride 2, padding 1),
ReLU, ConvTranspose2d(c, 1, 4, stride 2, padding 1), sigmoid. Exercises transposed convolution. The
untrained reconstructions vary by only about 0.01 around 0.46, so the tolerances are tightened to 1e-4
and 1e-3 (a constant output would pass the defaults for most pixels).
"""
import torch
import torch.nn as nn

batch_size = 16
channels = 32
image_size = 64

SIZES = {
    "gpu": {"batch_size": 192, "channels": 64, "image_size": 128},
    "npu": {"batch_size": 192, "channels": 64, "image_size": 128},
}

ATOL = 1e-4
RTOL = 1e-3


class Model(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(c, 1, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def get_inputs():
    return [torch.rand(batch_size, 1, image_size, image_size)]


def get_init_inputs():
    return [channels]


def get_flops():
    p = image_size * image_size
    c = channels
    encoder = 2 * (p // 4) * 1 * c * 9 + 2 * (p // 16) * c * 2 * c * 9
    decoder = 2 * (p // 16) * 2 * c * c * 16 + 2 * (p // 4) * c * 1 * 16
    return batch_size * (encoder + decoder)
