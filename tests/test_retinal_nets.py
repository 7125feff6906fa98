"""Retinal encoders (nets/retinal.py): layer shapes, settings, errors, and their sb3 wrapper."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from neurorl_cli import catalog
from neurorl_cli.errors import UserError
from neurorl_cli.nets.retinal import DEFAULTS, ENCODERS, conv_shapes, make_encoder

from .conftest import cli

OBS = (3, 72, 128)  # the Doom tasks' observations, channels first


def conv_layers(encoder) -> list[nn.Conv2d]:
    return [pair[0] for pair in encoder.convs]


def test_lindsey_default_layers_at_72x128():
    enc = make_encoder("retinal-lindsey", OBS)
    assert enc.layer_names == ["BC", "RGC", "V1"]
    convs = conv_layers(enc)
    # (in, out, kernel, stride): BC 3->32 k7 s2, RGC 32->4 k7 s1, V1 4->32 k7 s1; no padding anywhere.
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (3, 32, (7, 7), (2, 2), (0, 0)), (32, 4, (7, 7), (1, 1), (0, 0)), (4, 32, (7, 7), (1, 1), (0, 0))]
    # 72x128 -> (72-7)//2+1 = 33, (128-7)//2+1 = 61 -> 27x55 -> 21x49
    assert enc.shapes == [(32, 33, 61), (4, 27, 55), (32, 21, 49)]
    assert all(isinstance(pair[1], nn.ELU) for pair in enc.convs)
    assert enc.fc[0].in_features == 32 * 21 * 49 and enc.fc[0].out_features == 64 and isinstance(enc.fc[1], nn.ELU)
    assert not any(isinstance(m, nn.MaxPool2d | nn.AvgPool2d) for m in enc.modules())
    x = torch.rand(5, *OBS)
    assert enc(x).shape == (5, 64) and enc.output_size == 64


def test_simple_default_layers_at_72x128():
    enc = make_encoder("retinal-simple", OBS)
    (conv,) = conv_layers(enc)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (3, 16, (5, 5), (1, 1), (0, 0))
    assert enc.shapes == [(16, 68, 124)]
    assert enc.fc[0].in_features == 16 * 68 * 124
    assert enc(torch.rand(2, *OBS)).shape == (2, 64)


@pytest.mark.parametrize("depth,names,last", [
    (0, ["BC", "RGC"], (4, 27, 55)),
    (1, ["BC", "RGC", "V1"], (32, 21, 49)),
    (2, ["BC", "RGC", "V1", "VVS1"], (32, 15, 43)),
])
def test_vvs_depth_adds_layers(depth, names, last):
    enc = make_encoder("retinal-lindsey", OBS, vvs_depth=depth)
    assert enc.layer_names == names and len(enc.convs) == depth + 2
    assert enc.shapes[-1] == last
    if depth >= 1:
        assert (conv_layers(enc)[2].in_channels, conv_layers(enc)[2].out_channels) == (4, 32)  # V1 widens the bottleneck
    if depth == 2:
        assert (conv_layers(enc)[3].in_channels, conv_layers(enc)[3].out_channels) == (32, 32)
    assert enc(torch.rand(1, *OBS)).shape == (1, 64)


def test_settings_change_the_network():
    enc = make_encoder("retinal-lindsey", OBS, global_channels=8, retinal_bottleneck=2, kernel_size=5,
                       retinal_stride=3, activation="tanh", hidden_size=32)
    convs = conv_layers(enc)
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(8, 5, 3), (2, 5, 1), (8, 5, 1)]
    assert all(isinstance(pair[1], nn.Tanh) for pair in enc.convs) and isinstance(enc.fc[1], nn.Tanh)
    assert enc(torch.rand(3, *OBS)).shape == (3, 32)
    linear = make_encoder("retinal-simple", OBS, activation="linear")
    assert isinstance(linear.convs[0][1], nn.Identity)


def test_greyscale_turns_rgb_into_luminance():
    enc = make_encoder("retinal-lindsey", OBS, greyscale=True)
    assert conv_layers(enc)[0].in_channels == 1
    stack = enc.conv_stack(1)
    grey = stack[0]
    pure = torch.zeros(3, 3, 4, 4)
    for c in range(3):
        pure[c, c] = 1.0
    assert torch.allclose(grey(pure)[:, 0, 0, 0], torch.tensor([0.299, 0.587, 0.114]))
    # A grey picture (equal channels) keeps its value.
    flat = torch.full((1, 3, 4, 4), 0.5)
    assert torch.allclose(grey(flat), torch.full((1, 1, 4, 4), 0.5))
    assert enc(torch.rand(2, *OBS)).shape == (2, 64)


def test_conv_stack_is_the_encoders_own_first_layers():
    enc = make_encoder("retinal-lindsey", OBS, vvs_depth=2)
    x = torch.rand(2, *OBS)
    for n in range(1, 5):
        stack = enc.conv_stack(n)
        expected = x
        for layer in enc.convs[:n]:
            expected = layer(expected)
        assert torch.equal(stack(x), expected)
        assert stack(x).shape[1:] == enc.shapes[n - 1]
    # Shared weights, not copies: a change to the encoder shows in the stack.
    with torch.no_grad():
        conv_layers(enc)[0].weight.zero_()
        conv_layers(enc)[0].bias.fill_(1.0)
    assert torch.allclose(enc.conv_stack(1)(x), torch.ones(1))
    with pytest.raises(ValueError):
        enc.conv_stack(5)


def test_resolution_that_does_not_fit_names_the_settings():
    with pytest.raises(UserError, match="kernel_size.*retinal_stride.*vvs_depth"):
        make_encoder("retinal-lindsey", (3, 24, 128))  # 24 -> 9 -> 3 -> empty at V1
    with pytest.raises(UserError, match="layer V1"):
        conv_shapes("retinal-lindsey", (3, 24, 128))
    assert conv_shapes("retinal-lindsey", (3, 24, 128), vvs_depth=0)[-1] == (4, 3, 55)
    with pytest.raises(UserError, match="kernel_size"):
        make_encoder("retinal-simple", (3, 4, 4))


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="retinal-simple has no retinal_bottleneck, vvs_depth"):
        make_encoder("retinal-simple", OBS, vvs_depth=2, retinal_bottleneck=3)
    with pytest.raises(UserError, match="unknown encoder 'retinal-foo'"):
        make_encoder("retinal-foo", OBS)
    with pytest.raises(UserError, match="activation"):
        make_encoder("retinal-simple", OBS, activation="gelu")
    with pytest.raises(UserError, match="vvs_depth"):
        make_encoder("retinal-lindsey", OBS, vvs_depth=-1)
    assert set(ENCODERS) == set(DEFAULTS) == {"retinal-simple", "retinal-lindsey"}


def test_sb3_features_extractor_wraps_the_encoder():
    from neurorl_cli.engines.sb3.trainer import RetinalFeatures

    space = gym.spaces.Box(0, 255, OBS, dtype=np.uint8)
    features = RetinalFeatures(space, name="retinal-lindsey", global_channels=8, hidden_size=16)
    assert features.features_dim == 16
    assert features(torch.rand(4, *OBS)).shape == (4, 16)
    assert features.encoder.settings["global_channels"] == 8


def test_catalog_refuses_an_encoder_that_does_not_fit_the_task():
    task, model = catalog.load_task("doom-basic"), catalog.load_model("retinal-lindsey")
    (config,) = catalog.resolve(task, model, ["task.height=24"])
    assert "layer V1 would have no output" in catalog.pair_problem(config)
    (config,) = catalog.resolve(task, model, ["model.kernel_size=3"])
    assert catalog.pair_problem(config) is None
    sb3 = catalog.load_model("retinal-recurrent-ppo")
    (config,) = catalog.resolve(task, sb3, ["model.kernel_size=80"])  # the encoder table's setting
    assert config["model"]["encoder"]["kernel_size"] == 80
    assert "kernel_size" in catalog.pair_problem(config)
    with pytest.raises(UserError, match="retinal-simple has no vvs_depth"):
        catalog.resolve(task, catalog.load_model("retinal-simple"), ["model.vvs_depth=2"])


def test_cli_refuses_an_encoder_that_does_not_fit(neurorl_home):
    proc = cli("train", "doom-basic", "retinal-lindsey", "--set", "model.kernel_size=40", "--steps", "64")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "retinal-lindsey does not fit 72x128" in lines[0] and "kernel_size 40" in lines[0]
    assert not (neurorl_home / "runs").exists() or not any((neurorl_home / "runs").iterdir())
