"""Small shared layers: the MLP of box heads (and DAB's / MeMOTR's query MLPs), the residual
FFN block of MeMOTR's query updater, and head initialisation."""
from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """`num_layers` Linear layers with ReLU in between (none after the last).

    Parameter names `layers.{i}` match DETR's MLP, so official box heads load unchanged.
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class FFN(nn.Module):
    """Residual feed-forward block followed by LayerNorm: `norm(x + linear2(relu(linear1(x))))`."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


def focal_prior_bias(prior_prob: float = 0.01) -> float:
    """Class-logit bias so every class starts at probability `prior_prob` (RetinaNet init)."""
    return -math.log((1 - prior_prob) / prior_prob)


def init_class_head(head: nn.Linear, prior_prob: float = 0.01) -> None:
    """Bias every class logit to the focal-loss prior."""
    nn.init.constant_(head.bias, focal_prior_bias(prior_prob))


def init_box_head(head: MLP, wh_bias: float = -2.0) -> None:
    """Start predicting no shift of the reference and small boxes (sigmoid(-2) ~ 0.12)."""
    nn.init.constant_(head.layers[-1].weight, 0.0)
    nn.init.constant_(head.layers[-1].bias, 0.0)
    nn.init.constant_(head.layers[-1].bias[2:], wh_bias)
