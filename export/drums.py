"""nn~ wrapper of the drum pattern VAE; the signal encoding is documented in docs/drums_encoding.md."""

from typing import Any

import cached_conv as cc
import torch
from torch import Tensor, nn

from latentlive.export.host_rate import HostRateModule
from latentlive.export.streams import guarded
from latentlive.models.drums import PatternVAE

INFER_STYLE = -2  # the style input of encode / forward that asks the module to pick the clip's style
MIN_LEVEL = 1.0 / 127.0  # a hit never plays quieter than MIDI velocity 1: its level stays above 0
DEFAULT_CLASS_THRESHOLD = 0.5  # per-class threshold of a checkpoint that chose none


@torch.jit.interface
class PatternPaths(nn.Module):
    """The :class:`PatternVAE` calls of :class:`DrumsExport`, through an interface so that each keeps its own
    TorchScript executor for the warm-up to compile (``export.host_rate``)."""

    def encode(
        self, pattern: Tensor, style: Tensor, velocity: Tensor, offset: Tensor
    ) -> tuple[Tensor, Tensor]:
        pass

    def decode_groove(self, z: Tensor, style: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pass

    def infer_style(self, pattern: Tensor, velocity: Tensor, offset: Tensor) -> Tensor:
        pass


class DrumsExport(HostRateModule):
    """``decode``, ``encode`` and ``forward`` of a :class:`PatternVAE` over signals, ratio 1 everywhere.

    Outputs of ``decode`` and ``forward`` are 9 hit levels (the velocity 0..1 where a hit plays, else 0) and
    9 timing offsets (fraction of a step, -0.5..0.5; 0 where no hit). Latent and style inputs are read once per
    buffer (its last sample, as nn~ holds control values); ``step`` is read per sample, so hits land on the
    sample where their step begins. The host rate does not matter (steps are signals); the device sets
    ``host_rate`` all the same, which warms the module up.
    """

    model: PatternPaths

    def __init__(
        self, model: PatternVAE, style_names: list[str], class_thresholds: list[float] | None = None
    ) -> None:
        super().__init__(None)
        self.model = torch.jit.script(model.eval().requires_grad_(False))
        self.latent_size = model.latent_size
        self.steps = model.steps
        self.instruments = model.instruments
        self.num_styles = len(style_names)
        self.infer_style = INFER_STYLE
        self.min_level = MIN_LEVEL
        # Inputs beyond this are no position, style or latent a device sends; clamping keeps casts defined.
        self.input_limit = 1.0e6
        self.output_guard = True
        thresholds = class_thresholds or [DEFAULT_CLASS_THRESHOLD] * model.instruments
        self.register_buffer(
            "class_thresholds", torch.tensor(thresholds, dtype=torch.float32).clamp(0.0, 1.0)
        )
        # One recorded pattern of velocities per batch entry (mc.nn~ runs up to cc.MAX_BATCH_SIZE voices).
        self.register_buffer("recorded", torch.zeros(cc.MAX_BATCH_SIZE, model.instruments, model.steps))
        self.register_attribute("temperature", 1.0)
        self.register_attribute("threshold", 0.5)
        self.register_attribute("latency", 0)  # samples; no convolution, nothing to wait for
        i = self.instruments
        latents = [f"(signal) latent z{k + 1}" for k in range(self.latent_size)]
        hits_in = [f"(signal) hit level {k + 1}" for k in range(i)]
        levels_out = [f"(signal) hit level {k + 1}" for k in range(i)]
        offsets_out = [f"(signal) offset {k + 1}" for k in range(i)]
        step, style = "(signal) step position", "(signal) style index"
        style_in = "(signal) style index (-2: infer)"
        style_out = "(signal) style index used"
        self.register_method(
            "decode", self.latent_size + 2, 1, 2 * i, 1, latents + [step, style], levels_out + offsets_out
        )
        self.register_method(
            "encode", i + 2, 1, self.latent_size + 1, 1, hits_in + [step, style_in], latents + [style_out]
        )
        self.register_method(
            "forward", i + 2, 1, 2 * i, 1, hits_in + [step, style_in], levels_out + offsets_out
        )
        self.recorded.zero_()  # registration ran each method once on silence

    def _step_index(self, step: Tensor) -> Tensor:
        """``step [B, T]`` (any float) -> integer step of the pattern ``[B, T]``."""
        return torch.floor(step.clamp(-self.input_limit, self.input_limit)).long().remainder(self.steps)

    def _style(self, style: Tensor) -> Tensor:
        """``style [B]`` (float) -> style index ``[B]``; out of range means "no style" (-1)."""
        index = torch.round(style.clamp(-self.input_limit, self.input_limit)).long()
        valid = (index >= 0) & (index < self.num_styles)
        return torch.where(valid, index, torch.full_like(index, -1))

    def _style_or_inferred(self, style: Tensor, recorded: Tensor) -> Tensor:
        """``style [B]`` (float) -> style index ``[B]``, where it is ``INFER_STYLE`` the style under which the
        recorded velocities ``[B, I, S]`` reconstruct best (``PatternVAE.infer_style``; -1 for a model without
        styles)."""
        index = torch.round(style.clamp(-self.input_limit, self.input_limit)).long()
        chosen = self._style(style)
        infer = index == self.infer_style
        if self.num_styles == 0 or not bool(infer.any()):
            return chosen
        velocity = recorded.clamp(0.0, 1.0)
        best = self.model.infer_style(
            (recorded > 0.0).float(), velocity, torch.zeros_like(velocity)
        )  # on the grid
        return torch.where(infer, best, chosen)

    def _thresholds(self) -> Tensor:
        """Per-class hit thresholds ``[I]``: the trained ones at ``threshold`` 0.5; 0 plays every cell, 1 none
        (each moves linearly between those)."""
        knob = min(1.0, max(0.0, self.threshold[0]))
        chosen = self.class_thresholds
        if knob <= 0.5:
            return chosen * (knob / 0.5)
        return chosen + (1.0 - chosen) * ((knob - 0.5) / 0.5)

    def _groove(self, z: Tensor, style: Tensor, step: Tensor) -> Tensor:
        """Hit levels and offsets ``[B, 2 I, T]`` of the pattern decoded from ``z [B, D]`` read at ``step [B, T]``."""
        logits, velocity, offset = self.model.decode_groove(z, style)
        probs = torch.sigmoid(logits / max(1e-3, self.temperature[0]))
        # below the threshold is silence; a NaN is not below it, and reaches the raw output
        silent = probs < self._thresholds().view(1, -1, 1)
        levels = torch.where(silent, torch.zeros_like(probs), velocity.clamp_min(self.min_level))
        offsets = torch.where(silent, torch.zeros_like(probs), offset)
        index = self._step_index(step).unsqueeze(1).expand(-1, self.instruments, -1)
        out = torch.cat([levels.gather(2, index), offsets.gather(2, index)], dim=1)
        return guarded(out, 1.0, self.output_guard)

    def _record(self, levels: Tensor, step: Tensor) -> Tensor:
        """Write the columns of the steps present in this buffer into the recorded patterns ``[B, I, S]``: each
        cell the loudest level (velocity 0..1) heard in it."""
        batch = levels.shape[0]
        index = self._step_index(step)  # [B, T]
        heard = levels.clamp(0.0, 1.0).nan_to_num(0.0)
        columns = torch.zeros(batch, self.instruments, self.steps, device=levels.device).scatter_reduce(
            2, index.unsqueeze(1).expand(-1, self.instruments, -1), heard, reduce="amax", include_self=True
        )
        present = torch.zeros(batch, self.steps, device=levels.device).scatter(
            1, index, torch.ones_like(heard[:, 0])
        )
        recorded = torch.where(present.unsqueeze(1) > 0.0, columns, self.recorded[:batch])
        self.recorded[:batch] = recorded
        return recorded

    def _encode_recorded(self, recorded: Tensor, style: Tensor) -> Tensor:
        """Posterior mean ``[B, D]`` of recorded velocities ``[B, I, S]`` (played on the grid: offsets 0)."""
        hits = (recorded > 0.0).float()
        mean, _ = self.model.encode(hits, style, recorded, torch.zeros_like(recorded))
        return mean

    @torch.jit.export
    def decode(self, x: Tensor) -> Tensor:
        """``[B, D + 2, T]`` (latents, step, style) -> hit levels and offsets ``[B, 18, T]``."""
        d = self.latent_size
        z = x[:, :d, -1].clamp(-self.input_limit, self.input_limit)
        return self._groove(z, self._style(x[:, d + 1, -1]), x[:, d])

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """``[B, 9 + 2, T]`` (hit levels, step, style) -> latent and style used ``[B, D + 1, T]`` of the
        recorded pattern."""
        i = self.instruments
        recorded = self._record(x[:, :i], x[:, i])
        style = self._style_or_inferred(x[:, i + 1, -1], recorded)
        mean = guarded(self._encode_recorded(recorded, style), 100.0, self.output_guard)
        out = torch.cat([mean, style.unsqueeze(1).float()], dim=1)
        return out.unsqueeze(-1).expand(-1, -1, x.shape[-1]).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 9 + 2, T]`` (hit levels, step, style) -> hit levels and offsets ``[B, 18, T]`` of the
        reconstruction."""
        i = self.instruments
        recorded = self._record(x[:, :i], x[:, i])
        style = self._style_or_inferred(x[:, i + 1, -1], recorded)
        return self._groove(self._encode_recorded(recorded, style), style, x[:, i])

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Clamp every output to its bound, NaN to 0 (on: for nn~); off: the raw output, for the contract."""
        self.output_guard = on

    def use_host_rate(self, rate: int) -> None:
        pass  # steps come as signals: nothing depends on the rate

    def warm_up(self) -> None:
        z = torch.zeros(1, self.latent_size)
        style = torch.full((1,), -1, dtype=torch.long)
        pattern = torch.zeros(1, self.instruments, self.steps)
        for _ in range(self.warm_up_calls):
            self.model.decode_groove(z, style)
            self.model.encode(pattern, style, pattern, pattern)
            self.model.infer_style(pattern, pattern, pattern)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the recorded patterns."""
        self.recorded.zero_()


def _model_arguments(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of the checkpoint's model; one saved before ``groove`` existed has none, and
    its decoder's width says whether it models velocities and offsets."""
    args = dict(checkpoint["model_args"])
    if "groove" not in args:
        state = checkpoint["model_state"]
        last = max((k for k in state if k.startswith("decoder.") and k.endswith(".weight")), key=len)
        args["groove"] = state[last].shape[0] == 3 * args["instruments"] * args["steps"]
    return args


def class_thresholds_of(metadata: dict[str, Any], instruments: int) -> list[float]:
    """The run's per-class hit thresholds (``metadata["class_thresholds"]``), 0.5 each for a run without."""
    chosen = metadata.get("class_thresholds")
    if chosen is None or len(chosen) != instruments:
        return [DEFAULT_CLASS_THRESHOLD] * instruments
    return [float(t) for t in chosen]


def build_drums_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[DrumsExport, dict[str, Any]]:
    """The wrapper and the metadata of the exported file, from a trainer checkpoint (the same module with
    ``streaming`` or without: the model has no cached-conv layers)."""
    model = PatternVAE(**_model_arguments(checkpoint))
    model.load_state_dict(checkpoint["model_state"])
    facts = checkpoint["metadata"]
    thresholds = class_thresholds_of(facts, model.instruments)
    wrapper = DrumsExport(model, facts["style_names"], thresholds)
    metadata = {
        "model": "drums",
        "latent_size": model.latent_size,
        "steps": model.steps,
        "bars": model.steps // 16,
        "style_names": facts["style_names"],
        "instrument_names": facts["instrument_names"],
        "gm_notes": facts["gm_notes"],
        "groove": model.groove,
        "class_thresholds": thresholds,
        "infer_style": INFER_STYLE,
        "attributes": {"temperature": 1.0, "threshold": 0.5, "latency": 0},
        "sample_rate": None,
        "latency_samples": 0,
        # Levels are velocities 0..1 and offsets -0.5..0.5; latents of a posterior mean stay well inside
        # +-100, and the style index below the number of styles.
        "output_bounds": {"decode": 1.0, "forward": 1.0, "encode": 100.0},
        # decode reads its latents once per buffer; encode and forward keep the recorded pattern, each step
        # until it is played again (the contract cannot know the steps; tests/test_export.py checks them)
        "state_window": {"decode": 0, "encode": None, "forward": None},
    }
    return wrapper, metadata
