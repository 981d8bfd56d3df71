"""nn~ wrapper of the drum pattern VAE; the signal encoding is documented in docs/drums_encoding.md."""

from typing import Any

import cached_conv as cc
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.export.host_rate import HostRateModule
from latentlive.export.streams import guarded
from latentlive.models.drums import PatternVAE


@torch.jit.interface
class PatternPaths(nn.Module):
    """The :class:`PatternVAE` calls of :class:`DrumsExport`, through an interface so that each keeps its own
    TorchScript executor for the warm-up to compile (``export.host_rate``)."""

    def encode(self, pattern: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
        pass

    def decode(self, z: Tensor, style: Tensor) -> Tensor:
        pass


class DrumsExport(HostRateModule):
    """``decode``, ``encode`` and ``forward`` of a :class:`PatternVAE` over signals, ratio 1 everywhere.

    Latent and style inputs are read once per buffer (its last sample, as nn~ holds control values);
    ``step`` is read per sample, so hits land on the sample where their step begins. The host rate does not
    matter (steps are signals); the device sets ``host_rate`` all the same, which warms the module up.
    """

    model: PatternPaths

    def __init__(self, model: PatternVAE, style_names: list[str]) -> None:
        super().__init__(None)
        self.model = torch.jit.script(model.eval().requires_grad_(False))
        self.latent_size = model.latent_size
        self.steps = model.steps
        self.instruments = model.instruments
        self.num_styles = len(style_names)
        # Inputs beyond this are no position, style or latent a device sends; clamping keeps casts defined.
        self.input_limit = 1.0e6
        self.output_guard = True
        # One recorded pattern per batch entry (mc.nn~ runs up to cc.MAX_BATCH_SIZE voices).
        self.register_buffer("recorded", torch.zeros(cc.MAX_BATCH_SIZE, model.instruments, model.steps))
        self.register_attribute("temperature", 1.0)
        self.register_attribute("threshold", 0.5)
        self.register_attribute("latency", 0)  # samples; no convolution, nothing to wait for
        latents = [f"(signal) latent z{i + 1}" for i in range(self.latent_size)]
        hits_in = [f"(signal) hit {i + 1}" for i in range(self.instruments)]
        hits_out = [f"(signal) hit level {i + 1}" for i in range(self.instruments)]
        step, style = "(signal) step position", "(signal) style index"
        self.register_method(
            "decode", self.latent_size + 2, 1, self.instruments, 1, latents + [step, style], hits_out
        )
        self.register_method(
            "encode", self.instruments + 1, 1, self.latent_size, 1, hits_in + [step], latents
        )
        self.register_method(
            "forward", self.instruments + 2, 1, self.instruments, 1, hits_in + [step, style], hits_out
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

    def _hit_levels(self, z: Tensor, style: Tensor, step: Tensor) -> Tensor:
        """Levels ``[B, I, T]`` of the pattern decoded from ``z [B, D]`` read at ``step [B, T]``."""
        probs = torch.sigmoid(self.model.decode(z, style) / max(1e-3, self.temperature[0]))
        index = self._step_index(step).unsqueeze(1).expand(-1, self.instruments, -1)
        levels = probs.gather(2, index)
        # below the threshold is silence; a NaN is not below it, and reaches the raw output
        levels = torch.where(levels < self.threshold[0], torch.zeros_like(levels), levels)
        return guarded(levels, 1.0, self.output_guard)

    def _record(self, hits: Tensor, step: Tensor) -> Tensor:
        """Write the columns of the steps present in this buffer into the recorded patterns ``[B, I, S]``."""
        batch = hits.shape[0]
        one_hot = F.one_hot(self._step_index(step), self.steps).float()  # [B, T, S]
        columns = torch.bmm((hits > 0.5).float(), one_hot) > 0.0  # [B, I, S]
        present = one_hot.amax(1) > 0.0  # [B, S]
        recorded = torch.where(present.unsqueeze(1), columns.float(), self.recorded[:batch])
        self.recorded[:batch] = recorded
        return recorded

    @torch.jit.export
    def decode(self, x: Tensor) -> Tensor:
        """``[B, D + 2, T]`` (latents, step, style) -> hit levels ``[B, 9, T]``."""
        d = self.latent_size
        z = x[:, :d, -1].clamp(-self.input_limit, self.input_limit)
        return self._hit_levels(z, self._style(x[:, d + 1, -1]), x[:, d])

    @torch.jit.export
    def encode(self, x: Tensor) -> Tensor:
        """``[B, 9 + 1, T]`` (hits, step) -> latent ``[B, D, T]`` of the recorded pattern."""
        i = self.instruments
        recorded = self._record(x[:, :i], x[:, i])
        no_style = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
        mean, _ = self.model.encode(recorded, no_style)
        mean = guarded(mean, 100.0, self.output_guard)
        return mean.unsqueeze(-1).expand(-1, -1, x.shape[-1]).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        """``[B, 9 + 2, T]`` (hits, step, style) -> hit levels ``[B, 9, T]`` of the reconstruction."""
        i = self.instruments
        style = self._style(x[:, i + 1, -1])
        recorded = self._record(x[:, :i], x[:, i])
        mean, _ = self.model.encode(recorded, style)
        return self._hit_levels(mean, style, x[:, i])

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
            self.model.decode(z, style)
            self.model.encode(pattern, style)

    @torch.jit.export
    def reset(self) -> None:
        """Forget the recorded patterns."""
        self.recorded.zero_()


def build_drums_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[DrumsExport, dict[str, Any]]:
    """The wrapper and the metadata of the exported file, from a trainer checkpoint (the same module with
    ``streaming`` or without: the model has no cached-conv layers)."""
    model = PatternVAE(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    facts = checkpoint["metadata"]
    wrapper = DrumsExport(model, facts["style_names"])
    metadata = {
        "model": "drums",
        "latent_size": model.latent_size,
        "steps": model.steps,
        "style_names": facts["style_names"],
        "instrument_names": facts["instrument_names"],
        "gm_notes": facts["gm_notes"],
        "attributes": {"temperature": 1.0, "threshold": 0.5, "latency": 0},
        "sample_rate": None,
        "latency_samples": 0,
        # Hit levels are probabilities; latents of a posterior mean stay well inside +-100.
        "output_bounds": {"decode": 1.0, "forward": 1.0, "encode": 100.0},
        # decode reads its latents once per buffer; encode and forward keep the recorded pattern, each step
        # until it is played again (the contract cannot know the steps; tests/test_export.py checks them)
        "state_window": {"decode": 0, "encode": None, "forward": None},
    }
    return wrapper, metadata
