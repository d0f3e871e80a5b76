"""Three-layer MLP classifier (Linear-ReLU-Linear-ReLU-Linear) from flattened 28x28 images to 10 logits.

Input x is (batch_size, 784) float32; the output is (batch_size, 10) float32 logits. Hidden layers
have `hidden` units. Three GEMMs whose epilogues take the bias and ReLU; the last one is skinny
(N = 10), so it is memory- rather than compute-bound.
"""
import torch
import torch.nn as nn

batch_size = 512
in_features = 784
hidden = 512
num_classes = 10

SIZES = {
    "gpu": {"batch_size": 8192, "hidden": 2048},
    "npu": {"batch_size": 8192, "hidden": 2048},
}

# Several shapes (harness.suite.shapes), each checked and timed; the case scores the geometric mean of
# their speedups. The second: an odd batch, which no GEMM tile divides.
SHAPES = {
    "cpu": [{}, {"batch_size": 333}],
    "gpu": [{}, {"batch_size": 3001}],
    "npu": [{}, {"batch_size": 3001}],
}


class Model(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, hidden, num_classes]


def get_flops():
    weights = in_features * hidden + hidden * hidden + hidden * num_classes
    return 2 * batch_size * weights
