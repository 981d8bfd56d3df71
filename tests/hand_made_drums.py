"""A drums run made by hand, not trained: its decoder's biases spell out a pattern with chosen velocities and
large timing offsets, so that tests of the playing path can tell feel from the grid (a tiny trained model's
offsets stay within a few hundredths of a step)."""

import json
from pathlib import Path

import numpy as np
import torch

from latentlive.core.runs import atomic_torch_save, load_checkpoint
from latentlive.corpus.drum_map import DEFAULT_NOTES, INSTRUMENT_NAMES
from latentlive.export.drums import build_drums_export
from latentlive.export.host import method_spec
from latentlive.export.metadata import METADATA_NAME
from latentlive.models.drums import PatternVAE

STYLE_NAMES = ["rock", "funk", "latin"]
HIT_BIAS = 6.0  # logits of +-6: every hit probability is within 0.0025 of 0 or 1
OFFSET_BIAS = 1.2  # 0.5 tanh(1.2) = 0.42 of a step


def groove_grids(steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits, velocities (0.1..1) and offsets (+-0.42 where a hit, alternating by class) ``[9, steps]``."""
    hits = np.zeros((9, steps), dtype=bool)
    hits[0, ::4] = True  # kick on the beats
    hits[1, 4::8] = True  # backbeat
    hits[2, 2::4] = True  # off-beat hats
    hits[7, 0] = True  # a crash on the one
    hits[4, steps - 3 :] = True  # a tom fill at the end
    grid = np.arange(9 * steps).reshape(9, steps)
    velocity = 0.1 + 0.9 * ((grid * 7) % 10) / 9.0
    offset = np.where(np.arange(9)[:, None] % 2 == 0, 1.0, -1.0) * np.ones((9, steps))
    offset = 0.5 * np.tanh(OFFSET_BIAS * offset)
    return hits, velocity.astype(np.float32), offset.astype(np.float32)


def groove_model(steps: int = 16, seed: int = 0) -> PatternVAE:
    """A :class:`PatternVAE` whose output hardly depends on ``z``: the grids of :func:`groove_grids`."""
    torch.manual_seed(seed)
    model = PatternVAE(
        instruments=9, steps=steps, latent_size=4, hidden_sizes=(32, 16), num_styles=3, groove=True
    )
    hits, velocity, offset = groove_grids(steps)
    last = model.decoder[-1]
    with torch.no_grad():
        last.weight.mul_(0.01)
        bias = torch.stack(
            [
                torch.from_numpy(np.where(hits, HIT_BIAS, -HIT_BIAS)).float(),
                torch.logit(torch.from_numpy(velocity)),
                torch.atanh(2.0 * torch.from_numpy(offset)),
            ]
        )
        last.bias.copy_(bias.flatten())
    return model.eval()


def write_groove_run(root: Path, steps: int = 16, class_thresholds: list[float] | None = None) -> Path:
    """A run folder (config and checkpoint) of :func:`groove_model` that ``latentlive export`` takes."""
    model = groove_model(steps)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    (root / "config.gin").write_text("# made by tests/hand_made_drums.py\n")
    metadata = {
        "style_names": STYLE_NAMES,
        "instrument_names": list(INSTRUMENT_NAMES),
        "gm_notes": list(DEFAULT_NOTES),
        "steps": steps,
        "groove": True,
    }
    if class_thresholds is not None:
        metadata["class_thresholds"] = class_thresholds
    checkpoint = {
        "task": "drums",
        "step": 0,
        "model_args": dict(
            instruments=9, steps=steps, latent_size=4, hidden_sizes=(32, 16), num_styles=3, groove=True
        ),
        "model_state": model.state_dict(),
        "metadata": metadata,
    }
    atomic_torch_save(checkpoint, root / "checkpoints" / "last.pt")
    return root


def save_groove_ts(root: Path, steps: int = 16) -> Path:
    """The run of :func:`write_groove_run` scripted and saved with its metadata as ``latentlive export``
    writes it, without the contract check (a few seconds instead of twenty; the 2-bar fixture runs it)."""
    run = write_groove_run(root, steps)
    wrapper, metadata = build_drums_export(load_checkpoint(run / "checkpoints" / "last.pt"))
    metadata.update(name=root.name, step=0, streaming=True, torch_version=torch.__version__)
    metadata["methods"] = {m: vars(method_spec(wrapper, m)) for m in ("decode", "encode", "forward")}
    path = root / "groove.ts"
    torch.jit.script(wrapper).save(str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    return path
