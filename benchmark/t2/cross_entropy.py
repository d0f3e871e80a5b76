"""Mean cross-entropy loss of (batch, classes) float32 logits against integer class targets.

Inputs are logits (batch_size, num_classes) float32 and targets (batch_size,) int64 in
[0, num_classes); the output is a float32 scalar (0-d tensor). A log-softmax per row, a gather of one
value per row and a mean over rows: a fused kernel never writes the log-probabilities.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

batch_size = 768
num_classes = 8192

SIZES = {
    "gpu": {"batch_size": 8192, "num_classes": 32768},
    "npu": {"batch_size": 8192, "num_classes": 32768},
}


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)


def get_inputs():
    return [torch.randn(batch_size, num_classes), torch.randint(0, num_classes, (batch_size,))]


def get_init_inputs():
    return []


def get_flops():
    # log-softmax (max, subtract, exp, sum, log) per logit; the gather and mean are negligible.
    return 5 * batch_size * num_classes
