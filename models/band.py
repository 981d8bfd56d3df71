"""The band player's RMVAE: a recurrent multimodal VAE over the parts of a measure.

A measure of P parts is a roll ``[P, 3, 128, S]`` (channels ``ONSET``, ``SOUNDING``, ``DURATION``). Each
part has its own encoder (a Gaussian expert) and decoder; the posterior of a measure is the product of the
experts of the parts present and one prior expert, which a GRU over the previous measures' latents
predicts. Monophonic parts are read and written as one token per step (a pitch starts, ``REST`` or
``HOLD``), polyphonic parts as onset probabilities and durations per pitch and step.

Every method that ``export/band.py`` calls is scriptable (``torch.jit.script``); nothing here reads files.
"""

from typing import Any

import gin
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentlive.models.vae import GaussianPosterior

STEPS = 16
ONSET, SOUNDING, DURATION = 0, 1, 2
PITCHES = 128
REST, HOLD = 128, 129
TOKENS = 130
MAX_DURATION = 32
PART_KINDS = ("mono", "poly")
ENCODERS = ("conv", "lstm")
FUSIONS = ("poe", "concat")


# Conversions between rolls and tokens (scriptable functions). TorchScript cannot read module-level
# constants, so the values of PITCHES (128), REST (128), HOLD (129), TOKENS (130), MAX_DURATION (32) and the
# channel indices are written out below; tests/test_band_model.py checks that they agree.


def roll_to_tokens(roll: Tensor) -> Tensor:
    """``[..., 3, 128, S]`` -> mono tokens ``[..., S]`` (long): the highest pitch starting at a step, else
    ``HOLD`` while something sounds, else ``REST``."""
    pitches = torch.arange(128, device=roll.device).view(128, 1)
    onset = roll.select(-3, 0) > 0.5
    highest = torch.where(onset, pitches, torch.full_like(pitches, -1)).amax(-2)
    sounding = (roll.select(-3, 1) > 0.5).any(-2)
    rest_or_hold = torch.where(sounding, torch.full_like(highest, 129), torch.full_like(highest, 128))
    return torch.where(highest >= 0, highest, rest_or_hold)


def sounding_pitch(roll: Tensor) -> Tensor:
    """``[..., 3, 128, S]`` -> the highest sounding pitch per step ``[..., S]`` (long), -1 for silence."""
    pitches = torch.arange(128, device=roll.device).view(128, 1)
    sounding = roll.select(-3, 1) > 0.5
    return torch.where(sounding, pitches, torch.full_like(pitches, -1)).amax(-2)


def tokens_to_roll(tokens: Tensor, carry_pitch: Tensor) -> Tensor:
    """Mono tokens ``[..., S]`` -> roll ``[..., 3, 128, S]`` (float).

    ``carry_pitch [...]`` (long) is the pitch sounding at the end of the previous measure (-1 for none): a
    ``HOLD`` continues it at step 0. A ``HOLD`` with nothing to continue is silence. Durations count within
    the measure (a note held to the barline gets its length so far), capped at ``MAX_DURATION``.
    """
    steps = tokens.shape[-1]
    batch_shape = list(tokens.shape[:-1])
    flat = tokens.reshape(-1, steps)
    carry = carry_pitch.reshape(-1, 1).to(flat.dtype)
    index = torch.arange(steps, device=tokens.device).view(1, steps)
    # Loop-free (TorchScript runs Python loops slowly): each step sounds the pitch of the last token that is
    # not HOLD (-1 for REST), or the carried pitch when only HOLDs precede it.
    anchor = torch.where(flat != 129, index, torch.full_like(flat, -1)).cummax(1)[0]
    started = torch.where(flat < 128, flat, torch.full_like(flat, -1))
    pitch = torch.where(anchor >= 0, started.gather(1, anchor.clamp(min=0)), carry.expand_as(flat))
    # A note lasts until the next step that does not hold it.
    held = (flat == 129) & (pitch >= 0)
    breaks = torch.where(held, torch.full_like(flat, steps), index.expand_as(flat))
    after = torch.cat([breaks[:, 1:], torch.full_like(flat[:, :1], steps)], 1)
    runs = after.flip(1).cummin(1)[0].flip(1) - index
    pitches = torch.arange(128, device=tokens.device).view(1, 128, 1)
    sounding = (pitch.unsqueeze(1) == pitches).float()  # [N, 128, S]
    onset = sounding * (flat < 128).unsqueeze(1).float()
    duration = onset * runs.clamp(max=32).unsqueeze(1).float()
    roll = torch.stack([onset, sounding, duration], 1)
    return roll.reshape(batch_shape + [3, 128, steps])


def onsets_to_roll(onsets: Tensor, durations: Tensor) -> Tensor:
    """Poly onsets ``[..., 128, S]`` (bool) with durations in steps ``[..., 128, S]`` -> roll
    ``[..., 3, 128, S]``; durations are rounded to 1..``MAX_DURATION`` and notes sound within the measure."""
    steps = onsets.shape[-1]
    length = torch.round(durations).clamp(1.0, 32.0) * onsets.float()
    offsets = torch.arange(steps, device=onsets.device).float()
    elapsed = offsets.view(1, steps) - offsets.view(steps, 1)  # [start, step]: steps since the start
    covers = (elapsed >= 0) & (length.unsqueeze(-1) > elapsed)  # [..., 128, start, step]
    sounding = covers.any(-2).float()
    return torch.stack([onsets.float(), sounding, length], -3)


# Building blocks.


class MonoFeatures(nn.Module):
    """A mono part's roll ``[B, 3, 128, S]`` -> step frames ``[B, S, H]``: an embedding of its tokens."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(TOKENS, hidden)

    def forward(self, roll: Tensor) -> Tensor:
        return self.embed(roll_to_tokens(roll))


class PolyFeatures(nn.Module):
    """A poly part's roll ``[B, 3, 128, S]`` -> step frames ``[B, S, H]``: a linear map of onset, sounding
    and log duration over the 128 pitches."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(3 * PITCHES, hidden)

    def forward(self, roll: Tensor) -> Tensor:
        duration = torch.log1p(roll[:, 2].clamp(min=0.0))
        return self.reduce(torch.cat([roll[:, 0], roll[:, 1], duration], 1).transpose(1, 2))


class BeatConv(nn.Module):
    """A 1-D convolution over the steps of frames ``[B, S, C]`` with kernel and stride ``width`` ->
    ``[B, S / width, C_out]``: each beat's frames through one linear map (a matrix product, far cheaper on the
    CPU than a convolution kernel at these sizes)."""

    def __init__(self, channels: int, out_channels: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.linear = nn.Linear(width * channels, out_channels)

    def forward(self, frames: Tensor) -> Tensor:
        batch, steps, channels = frames.shape
        return self.linear(frames.reshape(batch, steps // self.width, self.width * channels))


class StepConv(nn.Module):
    """A 1-D convolution over frames ``[B, T, C]`` -> ``[B, T, C_out]``, kernel 3, zero padding 1: one linear
    map to the three taps' outputs, shifted and added."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, 3 * out_channels)

    def forward(self, frames: Tensor) -> Tensor:
        taps = self.linear(frames).unflatten(-1, (3, -1))  # [B, T, 3, C_out]
        before = F.pad(taps[:, :-1, 0], [0, 0, 1, 0])  # tap 0 sees the frame before
        after = F.pad(taps[:, 1:, 2], [0, 0, 0, 1])  # tap 2 the frame after
        return before + taps[:, :, 1] + after


class ConvBody(nn.Module):
    """Frames ``[B, S, C]`` -> ``[B, H]``: a convolution with kernel and stride 4 to beat frames, one with
    kernel 3 over the beats, then a linear map of the flattened beats."""

    def __init__(self, channels: int, hidden: int, steps: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            BeatConv(channels, hidden, 4), nn.GELU(), StepConv(hidden, hidden), nn.GELU()
        )
        self.project = nn.Sequential(nn.Linear(hidden * (steps // 4), hidden), nn.GELU())

    def forward(self, frames: Tensor) -> Tensor:
        return self.project(self.layers(frames).flatten(1))


class LSTMBody(nn.Module):
    """Frames ``[B, S, C]`` -> ``[B, H]``: a bidirectional LSTM over the steps, both final states."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden // 2, batch_first=True, bidirectional=True)
        self.project = nn.Sequential(nn.Linear(2 * (hidden // 2), hidden), nn.GELU())

    def forward(self, frames: Tensor) -> Tensor:
        _, (final, _) = self.lstm(frames)
        return self.project(torch.cat([final[0], final[1]], 1))


class Expert(nn.Module):
    """Frames ``[B, S, C]`` -> a Gaussian expert ``(mean, logvar)``, each ``[B, D]``."""

    def __init__(self, channels: int, hidden: int, steps: int, latent_size: int, encoder: str) -> None:
        super().__init__()
        self.body = ConvBody(channels, hidden, steps) if encoder == "conv" else LSTMBody(channels, hidden)
        self.posterior = GaussianPosterior(hidden, latent_size)

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        return self.posterior(self.body(frames))


class PartDecoder(nn.Module):
    """``z [B, D]`` -> one part's compact outputs over its pitch range ``low..high`` (n pitches): mono token
    logits ``[B, n + 2, S]`` (the pitches, then rest and hold), or poly onset logits and durations (>= 1)
    ``[B, 2, n, S]``; :meth:`pack` spreads them over all 128 pitches.

    An MLP to one frame of ``width`` features per step, then a per-step linear map to the outputs (matrix
    products: on the CPU far cheaper than convolutions at these sizes, and decoding dominates training).
    """

    def __init__(
        self, kind: str, latent_size: int, hidden: int, width: int, steps: int, low: int, high: int
    ) -> None:
        super().__init__()
        self.mono, self.width, self.steps = kind == "mono", width, steps
        self.low, self.high, self.pitches = low, high, high - low + 1
        self.frames = nn.Sequential(
            nn.Linear(latent_size, hidden),
            nn.GELU(),
            nn.Linear(hidden, width * steps),
            nn.GELU(),
        )
        self.out = nn.Linear(width, self.pitches + 2 if self.mono else 2 * self.pitches)

    def forward(self, z: Tensor) -> Tensor:
        x = self.out(self.frames(z).view(-1, self.steps, self.width)).transpose(1, 2)  # [B, C, S]
        if self.mono:
            return x
        n = self.pitches
        return torch.stack([x[:, :n], 1.0 + F.softplus(x[:, n:])], 1)

    def pack(self, x: Tensor) -> Tensor:
        """Compact outputs -> ``[B, 2, 130, S]`` (layout in :meth:`BandRMVAE.decode`); pitches outside the
        range get logits of -1e4 (never drawn) and duration 1."""
        n, below, above = self.pitches, self.low, 127 - self.high
        if self.mono:
            pitches = F.pad(x[:, :n], [0, 0, below, above], value=-1.0e4)
            logits = torch.cat([pitches, x[:, n:]], 1)
            return torch.stack([logits, torch.zeros_like(logits)], 1)
        onset = F.pad(x[:, 0], [0, 0, below, above + 2], value=-1.0e4)
        duration = F.pad(x[:, 1], [0, 0, below, above + 2], value=1.0)
        return torch.stack([onset, duration], 1)

    def compact_roll(self, roll: Tensor) -> Tensor:
        """A part's roll ``[B, 3, 128, S]`` -> ``[B, 3, n, S]``, the rows of its pitch range."""
        return roll[:, :, self.low : self.high + 1]


def gaussian_product(
    means: Tensor, logvars: Tensor, mask: Tensor, prior_mean: Tensor, prior_logvar: Tensor
) -> tuple[Tensor, Tensor]:
    """The product of the prior expert and the experts ``[B, E, D]`` where ``mask [B, E]`` (bool) is set.

    Precisions add; the mean is the precision-weighted mean. Masked-out experts do not change the result.
    Returns ``(mean, logvar)``, each ``[B, D]``.
    """
    weight = torch.where(mask.unsqueeze(-1), torch.exp(-logvars), torch.zeros_like(logvars))
    prior_precision = torch.exp(-prior_logvar)
    precision = prior_precision + weight.sum(1)
    weighted = prior_mean * prior_precision + (
        weight * torch.where(mask.unsqueeze(-1), means, torch.zeros_like(means))
    ).sum(1)
    return weighted / precision, -torch.log(precision)


@gin.configurable
class BandRMVAE(nn.Module):
    """Recurrent multimodal VAE over measures of P parts (rolls ``[B, P, 3, 128, S]``).

    Args:
        part_kinds: ``"mono"`` or ``"poly"`` per part, in part order.
        steps: steps per measure (16; a multiple of 4).
        latent_size: size of a measure's latent z.
        hidden: width of encoders and decoders (their per-step frames have half as many features).
        encoder: ``"conv"`` (1-D convolutions over the steps) or ``"lstm"`` (bidirectional LSTM over steps).
        fusion: ``"poe"`` (one expert per part, product with the prior expert) or ``"concat"`` (the
            ablation: one joint encoder of the parts with absent parts zeroed, product with the prior).
        recurrent_size: size of the GRU state over measures.
        ahead: the prior of a state predicts the measure ``ahead`` (1 or 2) after the last one fed.
        pitch_ranges: ``[low, high]`` (inclusive) per part: the pitches its decoder can produce (all 128
            when None); narrower ranges make training much cheaper.
    """

    def __init__(
        self,
        part_kinds: list[str] | tuple[str, ...] = ("mono", "mono", "mono", "mono"),
        steps: int = STEPS,
        latent_size: int = 32,
        hidden: int = 256,
        encoder: str = "conv",
        fusion: str = "poe",
        recurrent_size: int = 256,
        ahead: int = 1,
        pitch_ranges: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        for name, value, allowed in (("encoder", encoder, ENCODERS), ("fusion", fusion, FUSIONS)):
            if value not in allowed:
                raise ValueError(f"BandRMVAE.{name} must be one of {allowed}, got {value!r}")
        if any(kind not in PART_KINDS for kind in part_kinds) or not part_kinds:
            raise ValueError(
                f"BandRMVAE.part_kinds must be a non-empty list of {PART_KINDS}, got {part_kinds}"
            )
        if steps % 4 or ahead not in (1, 2):
            raise ValueError(
                f"BandRMVAE needs steps divisible by 4 and ahead in (1, 2), got {steps}, {ahead}"
            )
        sizes = {"latent_size": latent_size, "hidden": hidden, "recurrent_size": recurrent_size}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"BandRMVAE.{name} must be at least 1, got {value}")
        self.part_kinds: list[str] = list(part_kinds)
        self.parts, self.steps, self.latent_size = len(part_kinds), steps, latent_size
        self.recurrent_size, self.ahead, self.fusion = recurrent_size, ahead, fusion
        width = max(1, hidden // 2)  # step frames are narrower than the measure-level layers
        self.features = nn.ModuleList(
            MonoFeatures(width) if kind == "mono" else PolyFeatures(width) for kind in self.part_kinds
        )
        poe = fusion == "poe"
        self.experts = nn.ModuleList(
            Expert(width, hidden, steps, latent_size, encoder) for _ in (self.part_kinds if poe else [])
        )
        self.joint = nn.ModuleList(
            [] if poe else [Expert(self.parts * width, hidden, steps, latent_size, encoder)]
        )
        ranges = [[0, 127]] * self.parts if pitch_ranges is None else [list(r) for r in pitch_ranges]
        if len(ranges) != self.parts or any(not 0 <= low <= high <= 127 for low, high in ranges):
            raise ValueError(
                f"BandRMVAE.pitch_ranges must hold 0 <= low <= high <= 127 per part, got {pitch_ranges}"
            )
        self.decoders = nn.ModuleList(
            PartDecoder(kind, latent_size, hidden, width, steps, low, high)
            for kind, (low, high) in zip(self.part_kinds, ranges, strict=True)
        )
        self.recurrence = nn.GRUCell(latent_size, recurrent_size)
        self.prior_hidden = nn.Sequential(nn.Linear(recurrent_size, recurrent_size), nn.GELU())
        self.prior_head = GaussianPosterior(recurrent_size, latent_size)

    @torch.no_grad()
    def initialise_outputs(self, frequencies: list[Tensor]) -> None:
        """Start each decoder at the data's marginals: ``frequencies[p] [130]`` (mono token shares, or poly
        onset shares per pitch in rows 0..127) become the output biases (log shares, log-odds). Without
        this, Adam needs thousands of steps to move a bias from 0 to the log share of ``HOLD``."""
        for decoder, share in zip(self.decoders, frequencies, strict=True):
            share = share.clamp(1e-6, 1.0 - 1e-6).to(decoder.out.bias)
            pitches = share[decoder.low : decoder.high + 1]
            if decoder.mono:
                decoder.out.bias.copy_(torch.log(torch.cat([pitches, share[128:130]])))
            else:
                decoder.out.bias[: decoder.pitches] = torch.log(pitches) - torch.log1p(-pitches)

    # Encoding.

    def experts_of(self, roll: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The experts of a measure: ``roll [B, P, 3, 128, S]``, ``present [B, P]`` (bool) ->
        ``(means [B, E, D], logvars [B, E, D], mask [B, E])``.

        With ``fusion="poe"`` E = P, the experts do not depend on ``present`` and ``mask`` is ``present``;
        with ``"concat"`` E = 1, the joint expert of the zero-filled parts, always in the product.
        """
        return self.experts_from_features(self.part_features(roll), present)

    def part_features(self, roll: Tensor) -> list[Tensor]:
        """Each part's step frames ``[B, S, H]`` of ``roll [B, P, 3, 128, S]``."""
        features: list[Tensor] = []
        for i, part in enumerate(self.features):
            features.append(part(roll[:, i]))
        return features

    def experts_from_features(self, features: list[Tensor], present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`experts_of` from the parts' frames (training reuses them across subsets)."""
        means: list[Tensor] = []
        logvars: list[Tensor] = []
        for i, expert in enumerate(self.experts):
            mean, logvar = expert(features[i])
            means.append(mean)
            logvars.append(logvar)
        mask = present
        for joint in self.joint:
            zeroed: list[Tensor] = []
            for i, f in enumerate(features):
                zeroed.append(f * present[:, i].view(-1, 1, 1).to(f.dtype))
            mean, logvar = joint(torch.cat(zeroed, 2))
            means.append(mean)
            logvars.append(logvar)
            mask = torch.ones_like(present[:, :1])
        return torch.stack(means, 1), torch.stack(logvars, 1), mask

    def encode(
        self, roll: Tensor, present: Tensor, prior_mean: Tensor, prior_logvar: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, logvar)`` ``[B, D]`` of a measure ``roll [B, P, 3, 128, S]`` given the parts
        ``present [B, P]`` (bool): the product of their experts and the prior expert (counted once)."""
        means, logvars, mask = self.experts_of(roll, present)
        return gaussian_product(means, logvars, mask, prior_mean, prior_logvar)

    # Recurrence over measures.

    def initial_state(self, batch: int) -> Tensor:
        """The recurrent state ``[B, R]`` before any measure."""
        return torch.zeros(batch, self.recurrent_size, device=self.recurrence.weight_hh.device)

    def advance(self, state: Tensor, z: Tensor) -> Tensor:
        """Feed one measure's latent ``z [B, D]``: ``state [B, R]`` -> ``[B, R]``."""
        return self.recurrence(z, state)

    def prior(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """Prior ``(mean, logvar)`` ``[B, D]`` of the measure ``ahead`` measures after the last one fed."""
        return self.prior_head(self.prior_hidden(state))

    def history_states(self, history: Tensor, present: Tensor | None = None) -> Tensor:
        """States ``[B, M + 1, R]`` after 0..M measures of ``history [B, M, P, 3, 128, S]``, each known in
        the parts ``present [B, P]`` (bool; default all).

        Measure k (1-based) is encoded with the prior expert of the state after ``max(0, k - ahead)``
        measures, as in training, and its posterior mean is fed.
        """
        batch, measures = history.shape[0], history.shape[1]
        states = [self.initial_state(batch)]
        if present is None:
            present = torch.ones(batch, self.parts, dtype=torch.bool, device=history.device)
        for k in range(measures):
            prior_mean, prior_logvar = self.prior(states[max(0, k + 1 - self.ahead)])
            mean, _ = self.encode(history[:, k], present, prior_mean, prior_logvar)
            states.append(self.advance(states[-1], mean))
        return torch.stack(states, 1)

    # Decoding and sampling.

    def compact_rolls(self, roll: Tensor) -> list[Tensor]:
        """``roll [B, P, 3, 128, S]`` -> each part's rows of its pitch range ``[B, 3, n_p, S]``."""
        rolls: list[Tensor] = []
        for i, decoder in enumerate(self.decoders):
            rolls.append(decoder.compact_roll(roll[:, i]))
        return rolls

    def decode(self, z: Tensor) -> Tensor:
        """``z [B, D]`` -> output parameters ``[B, P, 2, 130, S]``.

        Mono part: channel 0 = logits over the 130 tokens, channel 1 zeros. Poly part: channel 0 rows
        0..127 = onset logits, channel 1 rows 0..127 = duration in steps (>= 1); rows 128, 129 zeros.
        """
        params: list[Tensor] = []
        for decoder in self.decoders:
            params.append(decoder.pack(decoder(z)))
        return torch.stack(params, 1)

    def decode_parts(self, z: Tensor) -> list[Tensor]:
        """``z [B, D]`` -> each part's compact outputs (see :class:`PartDecoder`); training scores these
        against :meth:`compact_rolls`."""
        outputs: list[Tensor] = []
        for decoder in self.decoders:
            outputs.append(decoder(z))
        return outputs

    def sample_roll(self, params: Tensor, temperature: float, noise: Tensor, carry_pitch: Tensor) -> Tensor:
        """Draw a measure ``[B, P, 3, 128, S]`` from ``params [B, P, 2, 130, S]``.

        ``noise [B, P, 130, S]`` is uniform in (0, 1), supplied by the caller. Mono tokens: Gumbel-max at
        ``temperature``; poly onsets: Bernoulli of ``sigmoid(logit / temperature)``. Temperature 0 takes
        the argmax / threshold 0.5. ``carry_pitch [B, P]`` (long, -1 none) is continued by a ``HOLD`` at step 0.
        """
        rolls: list[Tensor] = []
        for i, kind in enumerate(self.part_kinds):
            if kind == "mono":
                logits = params[:, i, 0]
                if temperature > 0.0:
                    uniform = noise[:, i].clamp(1e-6, 1.0 - 1e-6)
                    logits = logits + temperature * -torch.log(-torch.log(uniform))
                rolls.append(tokens_to_roll(logits.argmax(1), carry_pitch[:, i]))
            else:
                logits = params[:, i, 0, :128]
                if temperature > 0.0:
                    onsets = noise[:, i, :128] < torch.sigmoid(logits / temperature)
                else:
                    onsets = logits >= 0.0
                rolls.append(onsets_to_roll(onsets, params[:, i, 1, :128]))
        return torch.stack(rolls, 1)

    def most_likely_roll(self, params: Tensor, carry_pitch: Tensor) -> Tensor:
        """:meth:`sample_roll` at temperature 0."""
        noise = torch.zeros(params.shape[0], self.parts, 130, params.shape[-1], device=params.device)
        return self.sample_roll(params, 0.0, noise, carry_pitch)

    # The two uses, batched (the evaluation calls them; the export may).

    def predict_next(
        self,
        history: Tensor,
        temperature: float,
        noise: Tensor,
        present: Tensor | None = None,
    ) -> Tensor:
        """The measure ``ahead`` after ``history [B, M, P, 3, 128, S]`` (M >= 1; known in the parts
        ``present [B, P]``, default all), decoded from the prior mean and sampled (``noise [B, P, 130, S]``)
        -> ``[B, P, 3, 128, S]``. A ``HOLD`` at step 0 continues the pitch sounding at the end of the last
        measure of the history (every part)."""
        states = self.history_states(history, present)
        mean, _ = self.prior(states[:, -1])
        carry = sounding_pitch(history[:, -1])[..., -1]
        return self.sample_roll(self.decode(mean), temperature, noise, carry)

    def fill(
        self, history: Tensor, measure: Tensor, present: Tensor, temperature: float, noise: Tensor
    ) -> Tensor:
        """The measure after ``history [B, M, P, 3, 128, S]`` (M >= 0) with the parts not ``present [B, P]``
        filled in: the posterior mean of the present parts and the prior expert, decoded and sampled.
        Present parts are returned unchanged -> ``[B, P, 3, 128, S]``."""
        states = self.history_states(history)
        measures = history.shape[1]
        prior_mean, prior_logvar = self.prior(states[:, max(0, measures + 1 - self.ahead)])
        mean, _ = self.encode(measure, present, prior_mean, prior_logvar)
        if measures > 0:
            carry = sounding_pitch(history[:, -1])[..., -1]
        else:
            carry = torch.full(present.shape, -1, dtype=torch.long, device=measure.device)
        drawn = self.sample_roll(self.decode(mean), temperature, noise, carry)
        keep = present.view(present.shape[0], present.shape[1], 1, 1, 1)
        return torch.where(keep, measure, drawn)


def load_main_model(model_args: dict[str, Any], model_state: dict[str, Tensor]) -> BandRMVAE:
    """The main :class:`BandRMVAE` of a band training checkpoint (``checkpoint["model_args"]``,
    ``checkpoint["model_state"]``): the trainer holds it with its ablations under the key ``main``."""
    model = BandRMVAE(**model_args)
    prefix = "main."
    state = {k[len(prefix) :]: v for k, v in model_state.items() if k.startswith(prefix)}
    model.load_state_dict(state or model_state)
    return model.eval()
