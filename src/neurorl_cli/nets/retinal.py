"""Retinal encoders (retinal-rl): convolutions without padding or pooling, then one linear layer.

- `retinal-simple`: one conv (3 -> 16 channels, kernel 5, stride 1), as the reference hard-codes
  it; here its channels, kernel and stride are settings with those values as defaults.
- `retinal-lindsey` (Lindsey et al. 2019): "BC" conv (in -> C, stride `retinal_stride`), the "RGC"
  bottleneck (C -> B), then `vvs_depth` more convs: "V1" (B -> C) and "VVS" layers (C -> C), all
  with kernel k and stride 1. vvs_depth 0 keeps BC + RGC only.

Both: the chosen nonlinearity after every conv, then flatten -> Linear -> hidden_size -> nonlinearity.
Input is float (N, C, H, W) in [0, 1]; `greyscale` first turns RGB into one luminance channel.
The same module is sample-factory's custom encoder and sb3's features extractor.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import torch
from torch import nn

from neurorl_cli.errors import UserError

# The settings of a retinal encoder, shared by the engines that use one.
ENCODER_SETTINGS = ("global_channels", "retinal_bottleneck", "vvs_depth", "kernel_size", "retinal_stride",
                    "activation", "greyscale", "hidden_size")




class EncoderSettings(BaseModel):
    """A retinal encoder's settings ; None: the encoder's own default."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    global_channels: int | None = Field(None, gt=0)
    retinal_bottleneck: int | None = Field(None, gt=0)  # retinal-lindsey only
    vvs_depth: int | None = Field(None, ge=0)  # retinal-lindsey only
    kernel_size: int | None = Field(None, gt=0)
    retinal_stride: int | None = Field(None, gt=0)
    activation: Literal["elu", "relu", "tanh", "linear"] = "elu"
    greyscale: bool = False
    hidden_size: int | None = Field(None, gt=0)

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity}

# Each encoder's settings with their defaults (sf1-legacy's); a setting an encoder does not
# have is refused rather than silently ignored.
DEFAULTS: dict[str, dict[str, Any]] = {
    "retinal-simple": {
        "global_channels": 16, "kernel_size": 5, "retinal_stride": 1,
        "activation": "elu", "greyscale": False, "hidden_size": 64,
    },
    "retinal-lindsey": {
        "global_channels": 32, "retinal_bottleneck": 4, "vvs_depth": 1, "kernel_size": 7, "retinal_stride": 2,
        "activation": "elu", "greyscale": False, "hidden_size": 64,
    },
}
ENCODERS = {
    "retinal-simple": "one conv layer, then a linear layer (small, fast, tends to do well)",
    "retinal-lindsey": "BC -> RGC bottleneck -> V1 -> VVS convs (Lindsey et al. 2019), then a linear layer",
}
# ITU-R BT.601 luma weights, as OpenCV and PIL convert RGB to grey.
LUMA = (0.299, 0.587, 0.114)


def encoder_settings(name: str, **hyper: Any) -> dict[str, Any]:
    """An encoder's complete settings: its defaults, overridden by `hyper` (None keeps a default)."""
    if name not in DEFAULTS:
        raise UserError(f"unknown encoder '{name}'; known: {', '.join(DEFAULTS)}")
    given = {k: v for k, v in hyper.items() if v is not None}
    unknown = sorted(set(given) - set(ENCODER_SETTINGS))
    if unknown:
        raise UserError(f"{name}: no setting {', '.join(unknown)}; its settings are {', '.join(DEFAULTS[name])}")
    foreign = sorted(set(given) - set(DEFAULTS[name]))
    if foreign:
        raise UserError(f"{name} has no {', '.join(foreign)} (only retinal-lindsey has a bottleneck and VVS layers)")
    out = {**DEFAULTS[name], **given}
    for key in ("global_channels", "retinal_bottleneck", "kernel_size", "retinal_stride", "hidden_size"):
        value = out.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{name}: {key} must be a positive integer, got {value!r}")
    if "vvs_depth" in out and (isinstance(out["vvs_depth"], bool) or not isinstance(out["vvs_depth"], int)
                               or out["vvs_depth"] < 0):
        raise UserError(f"{name}: vvs_depth must be 0 or more, got {out['vvs_depth']!r}")
    if out["activation"] not in ACTIVATIONS:
        raise UserError(f"{name}: activation must be one of {', '.join(ACTIVATIONS)}, got {out['activation']!r}")
    if not isinstance(out["greyscale"], bool):
        raise UserError(f"{name}: greyscale must be true or false, got {out['greyscale']!r}")
    return out


def layer_plan(name: str, in_channels: int, settings: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    """(label, in channels, out channels, kernel, stride) of each conv layer, in order."""
    c, k, s = settings["global_channels"], settings["kernel_size"], settings["retinal_stride"]
    channels = 1 if settings["greyscale"] else in_channels
    if name == "retinal-simple":
        return [("conv", channels, c, k, s)]
    b = settings["retinal_bottleneck"]
    plan = [("BC", channels, c, k, s), ("RGC", c, b, k, 1)]
    for depth in range(settings["vvs_depth"]):
        plan.append(("V1", b, c, k, 1) if depth == 0 else (f"VVS{depth}", c, c, k, 1))
    return plan


def conv_shapes(name: str, obs_shape: tuple[int, int, int], **hyper: Any) -> list[tuple[int, int, int]]:
    """(C, H, W) after each conv layer for an input of `obs_shape` (C, H, W).

    Raises UserError naming the settings to change when a layer's output would be empty.
    """
    settings = encoder_settings(name, **hyper)
    channels, h, w = obs_shape
    shapes = []
    for label, _, out, k, s in layer_plan(name, channels, settings):
        h, w = (h - k) // s + 1, (w - k) // s + 1  # no padding
        if h < 1 or w < 1:
            knobs = "kernel_size, retinal_stride" + (", vvs_depth" if name == "retinal-lindsey" else "")
            raise UserError(
                f"{name} does not fit {obs_shape[1]}x{obs_shape[2]} observations: layer {label} would have no output "
                f"(kernel_size {settings['kernel_size']}, retinal_stride {settings['retinal_stride']}"
                + (f", vvs_depth {settings['vvs_depth']}" if "vvs_depth" in settings else "")
                + f"); lower {knobs}, or raise the task's width/height"
            )
        shapes.append((out, h, w))
    return shapes


class Greyscale(nn.Module):
    """RGB -> one luminance channel (a fixed weighted sum; no parameters)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weights", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.weights).sum(dim=1, keepdim=True)


class RetinalEncoder(nn.Module):
    """Images (N, C, H, W) float in [0, 1] -> features (N, hidden_size).

    `convs[i]` is `Sequential(Conv2d, nonlinearity)` of layer i (`layer_names[i]`), in order;
    `conv_stack(n)` is the input preprocessing plus the first n of them, for receptive fields.
    """

    def __init__(self, name: str, obs_shape: tuple[int, int, int], **hyper: Any):
        super().__init__()
        self.name = name
        self.settings = encoder_settings(name, **hyper)
        self.obs_shape = tuple(int(v) for v in obs_shape)
        self.shapes = conv_shapes(name, self.obs_shape, **self.settings)
        act = ACTIVATIONS[self.settings["activation"]]
        in_channels = self.obs_shape[0]
        if self.settings["greyscale"] and in_channels not in (1, 3):
            raise UserError(f"{name}: greyscale needs RGB (3-channel) or grey input, got {in_channels} channels")
        self.preprocess = Greyscale() if self.settings["greyscale"] and in_channels == 3 else nn.Identity()
        plan = layer_plan(name, in_channels, self.settings)
        self.layer_names = [label for label, *_ in plan]
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(cin, cout, kernel_size=k, stride=s), act()) for _, cin, cout, k, s in plan
        )
        c, h, w = self.shapes[-1]
        self.output_size = self.settings["hidden_size"]
        self.fc = nn.Sequential(nn.Linear(c * h * w, self.output_size), act())

    def conv_stack(self, n_layers: int) -> nn.Sequential:
        """The preprocessing and the first `n_layers` conv layers with their nonlinearities (shared weights)."""
        if not 1 <= n_layers <= len(self.convs):
            raise ValueError(f"{self.name} has {len(self.convs)} conv layers, asked for {n_layers}")
        return nn.Sequential(self.preprocess, *self.convs[:n_layers])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        for layer in self.convs:
            x = layer(x)
        return self.fc(x.flatten(1))


def make_encoder(name: str, obs_shape: tuple[int, int, int], **hyper: Any) -> RetinalEncoder:
    """A retinal encoder for observations of `obs_shape` (C, H, W); see DEFAULTS for the settings."""
    return RetinalEncoder(name, obs_shape, **hyper)

