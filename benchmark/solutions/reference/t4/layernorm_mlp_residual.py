"""A/A control for layernorm_mlp_residual: the case's own Model as ModelNew."""
from harness.solutions import reference_model

ModelNew = reference_model(__file__)
