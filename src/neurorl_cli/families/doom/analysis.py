"""Analyses of a Doom agent with a retinal encoder, as retinal-rl's `analyze` makes them.

- Receptive fields of every conv layer by white-noise spike-triggered average (STA): the
  average of the noise images weighted by one filter's activation at the central spatial
  position, cropped to that unit's receptive field (computed from the layers' kernels and
  strides) plus a small margin.
- An activity raster: units z-scored over time and ordered by a 1-D openTSNE embedding of
  the units, with pickups (families/doom/env.py's health events) marked.
- A 2-D openTSNE of the hidden states (time points), coloured by the critic's value and by health.
- The recorded agent's view as a GIF.

The report's Doom section (`doom_analysis_sections`) records the best checkpoint once at
frame skip 1 (the backend's `record`), stores the arrays as a compressed .npz in the run
directory, registers it as an artifact, and later reports reuse it without simulating.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from neurorl_cli.atomic import write_with
from neurorl_cli.analysis.figures import FigureFiles, new_figure, save, styled

# Metric keys the sample-factory backend logs (the report's training curves).
TRUE_REWARD_KEY = "train/true_reward"  # the engine's reward per episode, unshaped
SHAPED_REWARD_KEY = "train/episode_reward"  # what the agent was trained on (shaping included)
FPS_KEY = "train/steps_per_s"  # agent steps (frames / frame skip) per second, as the other backends

RECORDING_KIND = "doom-recording"  # artifact kind of a stored recording
RECORDING_KEYS = ("frames", "fc", "rnn", "value", "actions", "health")
RECORD_STEPS = 1000  # retinal-rl's default --analyze_max_num_frames
RECORD_SEED = 0
RF_SAMPLES = 25_000  # retinal-rl sf1-legacy's number of noise images
RF_MARGIN = 2  # pixels of context around the receptive field, as the reference's "2 +"
TSNE_SEED = 3  # the reference's random_state
TSNE_PERPLEXITY = 30.0
RASTER_RANGE = 4.0  # z-scores shown, +-
GIF_FPS = 35  # Doom's tic rate: frame skip 1 shows the game at its own speed
GIF_MAX_FRAMES = 350  # 10 s of game: the page embeds the GIF (1000 Doom frames are ~8 MB)


# -- receptive fields ------------------------------------------------------------------------------


@dataclass
class ReceptiveField:
    """The STA of every filter of one conv layer over the input image.

    `sta[f, c]` covers input rows top..top+h-1 and columns left..left+w-1; the unit's own
    receptive field is `rf_size` pixels starting at `rf_origin`, and `unit` is the output
    position whose activation weighted the noise."""

    layer: int  # 1 = the first conv layer
    sta: np.ndarray  # (filters, input channels, h, w)
    top: int
    left: int
    rf_origin: tuple[int, int]
    rf_size: tuple[int, int]
    unit: tuple[int, int]
    samples: int
    windowed: bool  # noise drawn over the window only (exact for convolutions; see receptive_field)


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, tuple | list) else (int(value), int(value))


def geometry(stack) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(size, jump, start) per axis (rows, columns) of the stack's receptive field.

    Output unit i reads input pixels start + i*jump .. start + i*jump + size - 1. Layers
    other than convolutions and pools are taken as pointwise (activations, greyscale mixing)."""
    from torch import nn

    size, jump, start = [1, 1], [1, 1], [0, 0]
    for module in stack.modules():
        if not isinstance(module, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            continue
        kernel, stride = _pair(module.kernel_size), _pair(module.stride or module.kernel_size)
        dilation = _pair(getattr(module, "dilation", 1))
        padding = module.padding
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding = tuple((k - 1) * d // 2 for k, d in zip(kernel, dilation))
        padding = _pair(padding)
        for axis in range(2):
            start[axis] -= padding[axis] * jump[axis]
            size[axis] += (kernel[axis] - 1) * dilation[axis] * jump[axis]
            jump[axis] *= stride[axis]
    return tuple(size), tuple(jump), tuple(start)


def reference_radius(layer: int, kernel: int) -> int:
    """The crop radius retinal-rl uses, 2 + (8(L-1)+k)//2: it ignores strides, so from the
    third lindsey layer on it is smaller than the true receptive field (reported for comparison)."""
    return 2 + (8 * (layer - 1) + kernel) // 2


def _device_of(stack):
    import torch

    for p in stack.parameters():
        return p.device
    return torch.device("cpu")


def receptive_field(stack, input_shape: tuple[int, int, int], samples: int = RF_SAMPLES, chunk: int = 1000,
                    seed: int = 0, margin: int = RF_MARGIN, layer: int = 0, windowed: bool | None = None) -> ReceptiveField:
    """White-noise STA of every output channel of `stack` at its central spatial position.

    `stack` maps (N, C, H, W) to (N, F, h, w), nonlinearities included; `input_shape` is
    (C, H, W). The noise is N(0, 1). The central unit only sees its receptive field, so
    noise outside it changes nothing: by default (`windowed=None`) the noise is drawn over
    the window only, after a probe confirms that the central unit computed on the window
    equals the same unit computed on the full image (it does for convolutions without
    padding and pointwise layers); otherwise full-size images are used, as the reference
    does (for the default lindsey encoder at 128x72 on 2 CPU cores, 25,000 images took 181 s
    over its three layers at full size and 11 s windowed)."""
    import torch

    if samples < 1:
        raise ValueError(f"receptive fields need at least one noise image, got {samples}")
    channels, height, width = (int(v) for v in input_shape)
    device = _device_of(stack)
    was_training = stack.training
    stack.eval()
    try:
        with torch.no_grad():
            out = stack(torch.zeros(1, channels, height, width, device=device))
            if out.dim() != 4 or out.shape[2] < 1 or out.shape[3] < 1:
                raise ValueError(f"the conv stack gives output of shape {tuple(out.shape)} for input {tuple(input_shape)}")
            unit = (out.shape[2] // 2, out.shape[3] // 2)
            size, jump, start = geometry(stack)
            origin = tuple(start[a] + unit[a] * jump[a] for a in range(2))
            # The window: the receptive field plus `margin` pixels, widened by whole strides so
            # that the central unit falls on the output grid of the window itself.
            limits = (height, width)
            lo, hi, inner = [], [], []
            for a in range(2):
                first, last = max(origin[a], 0), min(origin[a] + size[a], limits[a]) - 1
                steps = math.ceil(margin / jump[a])
                before = min(steps, max(first, 0) // jump[a])
                after = min(steps, max(limits[a] - 1 - last, 0) // jump[a])
                lo.append(first - before * jump[a])
                hi.append(last + after * jump[a] + 1)
                inner.append(before)
            top, left = lo
            crop = (slice(None), slice(None), slice(lo[0], hi[0]), slice(lo[1], hi[1]))
            gen = torch.Generator(device=device).manual_seed(seed)
            if windowed is None:
                windowed = _window_is_exact(stack, (channels, height, width), crop, unit, tuple(inner), gen, device)
            total = None
            done = 0
            while done < samples:
                n = min(chunk, samples - done)
                if windowed:
                    noise = torch.randn(n, channels, hi[0] - lo[0], hi[1] - lo[1], generator=gen, device=device)
                    act = stack(noise)[:, :, inner[0], inner[1]]
                else:
                    full = torch.randn(n, channels, height, width, generator=gen, device=device)
                    act = stack(full)[:, :, unit[0], unit[1]]
                    noise = full[crop]
                # float32 within a chunk (fast), float64 across chunks (no drift over many).
                part = torch.einsum("nf,nchw->fchw", act.float(), noise.float()).double()
                total = part if total is None else total + part
                done += n
    finally:
        stack.train(was_training)
    return ReceptiveField(layer, (total / samples).cpu().numpy(), top, left, origin, size, unit, samples, bool(windowed))


def _window_is_exact(stack, shape, crop, unit, inner, gen, device) -> bool:
    """Whether the central unit computed on the window alone equals the one on the full image."""
    import torch

    probe = torch.randn(4, *shape, generator=gen, device=device)
    try:
        part = stack(probe[crop])
        full = stack(probe)[:, :, unit[0], unit[1]]
        return (part.shape[2] > inner[0] and part.shape[3] > inner[1]
                and torch.allclose(part[:, :, inner[0], inner[1]], full, rtol=1e-4, atol=1e-5))
    except (RuntimeError, ValueError):  # the stack refuses a small input: use full-size images
        return False


def conv_layer_count(encoder) -> int:
    """How many conv layers an encoder's `convs` holds (pairs or a flat list alike)."""
    from torch import nn

    return sum(isinstance(m, nn.Conv2d) for part in encoder.convs for m in part.modules())


def encoder_receptive_fields(encoder, input_shape: tuple[int, int, int], samples: int = RF_SAMPLES,
                             chunk: int = 1000, seed: int = 0) -> list[ReceptiveField]:
    """STA receptive fields of conv layers 1..L of a retinal encoder (`conv_stack(n)`)."""
    return [receptive_field(encoder.conv_stack(n), input_shape, samples, chunk, seed + n, layer=n)
            for n in range(1, conv_layer_count(encoder) + 1)]


def tile_fields(rf: ReceptiveField, per_row: int) -> np.ndarray:
    """All panels in one image: each filter's channels side by side, `per_row` filters a row,
    NaN between panels; each filter divided by its largest |STA| (a scale symmetric about 0)."""
    filters, channels, h, w = rf.sta.shape
    rows = math.ceil(filters / per_row)
    gap, group_gap = 1, 3  # pixels between a filter's channels, and between filters
    group_w = channels * (w + gap) - gap
    canvas = np.full((rows * (h + group_gap) - group_gap, per_row * (group_w + group_gap) - group_gap), np.nan)
    for f in range(filters):
        scale = float(np.abs(rf.sta[f]).max()) or 1.0
        top, left = (f // per_row) * (h + group_gap), (f % per_row) * (group_w + group_gap)
        for c in range(channels):
            x = left + c * (w + gap)
            canvas[top:top + h, x:x + w] = rf.sta[f, c] / scale
    return canvas


@styled
def plot_receptive_fields(rf: ReceptiveField, out_dir: Path, stem: str | None = None,
                          channel_names: tuple[str, ...] = ("R", "G", "B")) -> FigureFiles:
    """One panel per (filter, input channel), each filter's panels on one colour scale
    symmetric about 0, drawn as one tiled image (one axes per panel took ~20 s to save for 96 panels)."""
    filters, channels, h, w = rf.sta.shape
    per_row = max(1, min(filters, 4 if channels > 1 else 8))
    canvas = tile_fields(rf, per_row)
    image_w = min(8.0, canvas.shape[1] / 12)  # inches; at most ~12 image pixels per inch of page
    fig, axes = new_figure(size=(image_w + 1.4, image_w * canvas.shape[0] / canvas.shape[1] + 0.9))
    ax = axes[0, 0]
    from matplotlib import colormaps

    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    image = ax.imshow(canvas, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
    names = channel_names if channels == len(channel_names) else tuple(f"ch{c}" for c in range(channels))
    group_w = channels * (w + 1) - 1
    for f in range(filters):
        ax.text((f % per_row) * (group_w + 3), (f // per_row) * (h + 3) - 0.8, f"f{f}", fontsize=6, va="bottom")
    ax.set_xticks([c * (w + 1) + (w - 1) / 2 for c in range(channels)], names, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, label="STA / its filter's max |STA|")
    ax.set_title(f"conv layer {rf.layer}: receptive field {rf.rf_size[0]}x{rf.rf_size[1]} px (+{rf.rf_origin[0] - rf.top} px around), "
                 f"{rf.samples} noise images", fontsize="small")
    f_idx, c_idx, r_idx, k_idx = np.meshgrid(np.arange(filters), np.arange(channels), np.arange(h), np.arange(w), indexing="ij")
    data = pd.DataFrame({
        "layer": rf.layer, "filter": f_idx.ravel(), "channel": c_idx.ravel(),
        "row": r_idx.ravel() + rf.top, "col": k_idx.ravel() + rf.left, "sta": rf.sta.ravel(),
    })
    return save(fig, data, out_dir, stem or f"rf_conv{rf.layer}")


# -- t-SNE raster and state embedding ----------------------------------------------------------------


def zscore(activity: np.ndarray) -> np.ndarray:
    """Each unit's (column's) time series to zero mean and unit variance; a constant unit is 0."""
    x = np.asarray(activity, dtype=np.float64)
    sd = x.std(axis=0)
    return np.divide(x - x.mean(axis=0), sd, out=np.zeros_like(x), where=sd > 1e-12)


def tsne(points: np.ndarray, dims: int, seed: int = TSNE_SEED, perplexity: float = TSNE_PERPLEXITY, n_jobs: int = 1) -> np.ndarray:
    """openTSNE embedding (PCA initialisation, euclidean), the perplexity capped at (n-1)/3
    as few points need; fewer than 4 points are laid out by index."""
    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 4:
        return np.arange(n, dtype=float)[:, None].repeat(dims, axis=1)
    from openTSNE import TSNE

    # openTSNE would lower a perplexity above (n-1)/3 itself, with a warning each time.
    embedding = TSNE(n_components=dims, perplexity=min(perplexity, (n - 1) / 3), initialization="pca",
                     metric="euclidean", n_jobs=n_jobs, random_state=seed).fit(points)
    return np.asarray(embedding)


def unit_order(activity: np.ndarray, seed: int = TSNE_SEED, n_jobs: int = 1) -> np.ndarray:
    """Units (columns of a (T, units) array) sorted by a 1-D t-SNE of their z-scored time series."""
    return np.argsort(tsne(zscore(activity).T, 1, seed, n_jobs=n_jobs)[:, 0], kind="stable")


def pickups(health: np.ndarray, episode: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Steps at which a healing and a harmful item was picked up, by the environment's own rule
    (families/doom/env.py `health_events`: the floor's small drain, deaths and respawns are neither) and,
    where the recording numbers its episodes, not at the first step of a new episode."""
    from neurorl_cli.families.doom.env import health_events  # here, not at the top: every report imports this module, most without Doom

    health = np.asarray(health, dtype=np.float64)
    gained, harmed = health_events(health[:-1], health[1:])
    if episode is not None:
        same = np.diff(np.asarray(episode)) == 0
        gained, harmed = gained & same, harmed & same
    return np.flatnonzero(gained) + 1, np.flatnonzero(harmed) + 1


@styled
def plot_raster(activity: np.ndarray, health: np.ndarray, out_dir: Path, stem: str, label: str,
                order: np.ndarray | None = None, seed: int = TSNE_SEED, n_jobs: int = 1,
                episode: np.ndarray | None = None) -> FigureFiles:
    """Z-scored units over time, sorted by a 1-D t-SNE; dashed lines at health gains
    (pickups of healing items), dotted at losses (harmful items)."""
    z = zscore(activity)
    order = unit_order(activity, seed, n_jobs) if order is None else np.asarray(order)
    gains, losses = pickups(health, episode)
    fig, axes = new_figure(size=(8.0, 4.2))
    ax = axes[0, 0]
    image = ax.imshow(z[:, order].T, aspect="auto", cmap="bwr", vmin=-RASTER_RANGE, vmax=RASTER_RANGE, interpolation="nearest")
    for t in gains:
        ax.axvline(t, color="k", ls="--", lw=0.7)
    for t in losses:
        ax.axvline(t, color="k", ls=":", lw=0.9)
    starts = [] if episode is None else np.flatnonzero(np.diff(np.asarray(episode)) != 0) + 1
    for t in starts:  # the GRU state starts afresh: its transients are no response to the scene
        ax.axvline(t, color="0.4", ls="-", lw=1.5)
    fig.colorbar(image, ax=ax, label="z-score")
    ax.set_xlabel("step (frame skip 1)")
    ax.set_ylabel(f"{label} unit (t-SNE order)")
    ax.set_title(f"{label}: {z.shape[1]} units; {len(gains)} gains (dashed), {len(losses)} losses (dotted)"
                 + (f", {len(starts)} new episodes (grey)" if len(starts) else ""), fontsize="small")
    event = np.zeros(len(z), dtype=int)
    event[gains], event[losses] = 1, -1
    data = pd.DataFrame({"t": np.arange(len(z)), "health": np.asarray(health), "pickup": event})
    units = pd.DataFrame(z[:, order], columns=[f"unit{u}" for u in order])  # columns in raster order
    return save(fig, pd.concat([data, units], axis=1), out_dir, stem)


@styled
def plot_state_tsne(states: np.ndarray, value: np.ndarray, health: np.ndarray, out_dir: Path, stem: str, label: str,
                    seed: int = TSNE_SEED, n_jobs: int = 1) -> FigureFiles:
    """A 2-D t-SNE of the states (one point per time step), coloured by value and by health."""
    xy = tsne(np.asarray(states), 2, seed, n_jobs=n_jobs)
    fig, axes = new_figure(1, 2, size=(9.0, 4.0))
    for ax, colour, name, cmap in ((axes[0, 0], value, "value", "viridis"), (axes[0, 1], health, "health", "plasma")):
        points = ax.scatter(xy[:, 0], xy[:, 1], c=np.asarray(colour), s=4, cmap=cmap, lw=0)
        fig.colorbar(points, ax=ax, label=name)
        ax.set_title(f"{label} states coloured by {name}", fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    data = pd.DataFrame({"t": np.arange(len(xy)), "tsne_x": xy[:, 0], "tsne_y": xy[:, 1], "value": value, "health": health})
    return save(fig, data, out_dir, stem)


def write_gif(frames: np.ndarray, target: Path, fps: int = GIF_FPS, max_frames: int = GIF_MAX_FRAMES) -> Path:
    """The recorded agent's view (T, H, W, 3) at the game's speed (GIF delays are whole centiseconds)."""
    from neurorl_cli.analysis.watch import write_gif as write

    return write(list(np.asarray(frames[:max_frames], dtype=np.uint8)), target, round(100 / fps) * 10)


# -- recordings ------------------------------------------------------------------------------------


def check_recording(arrays: dict) -> dict:
    """The recording's arrays, or ValueError naming what is missing or of another length."""
    missing = [k for k in RECORDING_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"the recording lacks {', '.join(missing)}")
    lengths = {k: len(np.atleast_1d(v)) for k, v in arrays.items()}  # optional extras too (episode)
    if len(set(lengths.values())) != 1 or not lengths["frames"]:
        raise ValueError(f"the recording's arrays differ in length or are empty: {lengths}")
    return {k: np.asarray(arrays[k]) for k in arrays}


def save_recording(arrays: dict, target: Path) -> Path:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    write_with(Path(target), write, suffix=".npz")
    return Path(target)


def load_recording(path: Path) -> dict:
    with np.load(path) as data:
        return check_recording({k: data[k] for k in data.files})


def recording_path(run_dir: str | Path, step: int, sha256: str, steps: int, seed: int) -> Path:
    """Where one recording lives: in its run, named by checkpoint (step and content) and settings."""
    return Path(run_dir) / "analysis" / f"recording-step{step}-{sha256[:12]}-T{steps}-fs1-seed{seed}.npz"


def recorded_activity(register_file, run, ckpt, record: Callable[[], dict], steps: int, seed: int) -> tuple[dict, bool]:
    """The stored recording of a checkpoint, or a new one from `record()`, stored and registered
    through `register_file(path, kind, what made it)`. Returns (arrays, reused); a damaged file is
    recorded again."""
    path = recording_path(run.run_dir, ckpt.step, ckpt.sha256, steps, seed)
    arrays = None
    if path.is_file():
        try:
            arrays = load_recording(path)
        except (OSError, ValueError):
            arrays = None  # damaged or partial: record again
    reused = arrays is not None
    if arrays is None:
        arrays = check_recording(record())
        save_recording(arrays, path)
    register_file(path, RECORDING_KIND, f"record run r{run.id} checkpoint step {ckpt.step}: {steps} steps, frame skip 1, seed {seed}")
    return arrays, reused


# -- the report's Doom section -------------------------------------------------------------------------


def find_encoder(policy):
    """The retinal encoder inside a loaded policy: the first object offering `conv_stack`."""
    from torch import nn

    seen = []
    queue = [policy]
    while queue:
        obj = queue.pop(0)
        if obj is None or any(obj is s for s in seen):
            continue
        seen.append(obj)
        if callable(getattr(obj, "conv_stack", None)) and hasattr(obj, "convs"):
            return obj
        if isinstance(obj, nn.Module):
            found = next((m for m in obj.modules() if callable(getattr(m, "conv_stack", None)) and hasattr(m, "convs")), None)
            if found is not None:
                return found
        queue.extend(getattr(obj, name, None) for name in ("encoder", "actor_critic", "model", "net", "policy"))
    return None


def encoder_input_shape(encoder, frames: np.ndarray | None) -> tuple[int, int, int]:
    """(C, H, W) the encoder takes: its own `obs_shape` when it has one, else the recorded frames'."""
    shape = getattr(encoder, "obs_shape", None)
    if shape is not None:
        return tuple(int(v) for v in shape)
    if frames is None:
        raise ValueError("the encoder has no obs_shape and there are no recorded frames to take it from")
    return (3, int(frames.shape[1]), int(frames.shape[2]))


def record_seed(config: dict) -> int:
    """The environment seed of the recording: that of the task's frame-skip-1 protocol (the
    analysis setting) when it has one, else RECORD_SEED."""
    for protocol in config.get("task", {}).get("protocols", {}).values():
        if int((protocol.get("kwargs") or {}).get("frame_skip", 0)) == 1:
            return int(protocol.get("seed", RECORD_SEED))
    return RECORD_SEED


def doom_analysis_sections(register_file, config: dict, run, ckpt, checkpoint_path: Path, out: Path, written: list[Path],
                           policy, record: Callable[..., dict] | None = None, steps: int = RECORD_STEPS,
                           rf_samples: int = RF_SAMPLES, seed: int | None = None, n_jobs: int = 1) -> list:
    """The best checkpoint's analyses as report sections: GIF, receptive fields, rasters, t-SNE.

    `run` and `ckpt` are registry rows (Run, Checkpoint) and `checkpoint_path` the verified
    file. `record` is the engine's `record(config, checkpoint, steps, frame_skip=1, seed=...)`,
    called only when no stored recording exists; an engine without one (None) gets receptive
    fields only. `policy` is the checkpoint's (its encoder gives the receptive fields). Figure
    files are appended to `written`; a new recording is registered with `register_file`."""
    from neurorl_cli.analysis import html
    from neurorl_cli.families.doom.env import HARM_THRESHOLD

    seed = record_seed(config) if seed is None else seed
    where = f"seed {run.seed}, checkpoint at step {ckpt.step}"

    def add(section, files: FigureFiles, caption: str) -> None:
        section.figure(files.png, caption, links=files.all())
        written.extend(files.all())

    sections = []
    view = html.Section("Agent's view (best checkpoint)")
    arrays = None
    if record is None:
        engine = config.get("model", {}).get("engine", "this")
        view.notice(f"The {engine} engine does not record activity, so there is no GIF, raster or t-SNE; receptive fields follow.")
    else:
        arrays, reused = recorded_activity(
            register_file, run, ckpt, lambda: record(config, checkpoint_path, steps, frame_skip=1, seed=seed), steps, seed)
        frames = arrays["frames"]
        gif = write_gif(frames, out / "agent_view.gif")
        source = "stored recording" if reused else "new recording (stored for later reports)"
        view.figure(gif, f"{where}: {min(len(frames), GIF_MAX_FRAMES)} of {len(frames)} steps at frame skip 1, played at "
                         f"{GIF_FPS} frames/s (environment seed {seed}; {source}).", links=[gif])
        written.append(gif)
    sections.append(view)

    rfs = html.Section("Receptive fields (white-noise spike-triggered average)")
    encoder = find_encoder(policy)
    if encoder is None:
        rfs.notice("This policy exposes no retinal encoder (no conv_stack), so no receptive fields.")
    else:
        shape = encoder_input_shape(encoder, None if arrays is None else arrays["frames"])
        for rf in encoder_receptive_fields(encoder, shape, rf_samples):
            add(rfs, plot_receptive_fields(rf, out), (
                f"{where}: conv layer {rf.layer}. {rf.samples} white-noise images N(0,1) of size {shape[1]}x{shape[2]}; each "
                f"filter's activation (nonlinearity included) at the centre of the layer's output (row {rf.unit[0]}, column "
                f"{rf.unit[1]}) weights the noise. Shown: that unit's true receptive field ({rf.rf_size[0]}x{rf.rf_size[1]} px, "
                f"from the kernels and strides) plus {rf.rf_origin[0] - rf.top} px around it; one panel per filter and input "
                f"channel, each filter on its own colour scale symmetric about 0 (white: no effect)."))
    sections.append(rfs)
    if arrays is None:
        return sections

    raster = html.Section("Activity rasters (units sorted by 1-D t-SNE)")
    states = html.Section("Hidden states (2-D t-SNE)")
    health, value, steps_recorded = arrays["health"], arrays["value"], len(arrays["frames"])
    episode = arrays.get("episode")  # optional: episode boundaries are not pickups
    gains, losses = pickups(health, episode)
    for key, label in (("fc", "encoder output (FC)"), ("rnn", "GRU state")):
        acts = np.asarray(arrays[key], dtype=np.float64).reshape(steps_recorded, -1)
        add(raster, plot_raster(acts, health, out, f"raster_{key}", label, n_jobs=n_jobs, episode=episode), (
            f"{where}: {label}, {acts.shape[1]} units z-scored over {len(acts)} steps (frame skip 1), sorted by a 1-D openTSNE "
            f"of the units (perplexity {min(TSNE_PERPLEXITY, (acts.shape[1] - 1) / 3):.3g}, PCA init, random_state {TSNE_SEED}); "
            f"colour range +-{RASTER_RANGE:g}. Dashed: healing items picked up ({len(gains)}); dotted: harmful ones ({len(losses)}), "
            f"falls beyond {HARM_THRESHOLD} HP (the floor's smaller drain, deaths and respawns are neither)"
            + ("; solid grey: a new episode begins (the GRU state is reset)." if episode is not None else ".")))
    rnn = np.asarray(arrays["rnn"], dtype=np.float64).reshape(steps_recorded, -1)
    add(states, plot_state_tsne(rnn, value, health, out, "tsne_rnn", "GRU", n_jobs=n_jobs), (
        f"{where}: 2-D openTSNE of the GRU state at each of {len(rnn)} steps (perplexity {min(TSNE_PERPLEXITY, (len(rnn) - 1) / 3):.3g}, "
        f"PCA init, random_state {TSNE_SEED}), coloured by the critic's value (left) and by health (right)."))
    sections.extend([raster, states])
    return sections
