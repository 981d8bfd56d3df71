"""nn~ wrapper of the band RMVAE; the signal encoding is documented in docs/band_encoding.md.

``next`` and ``fill`` take ``L`` lanes (the sounding pitch of each mono part and of each voice of each poly
part, -1 for silence) and the transport position in sixteenths, and return ``L`` lanes in token form (a
pitch where a note starts, -2 while it holds, -1 for silence). Each batch entry (an mc.nn~ voice) keeps its
own state: the measure being recorded, the experts of the last ``context`` measures (each measure is
encoded once, when it ends), the recent predictions and a draw counter that seeds the sampling noise, so
eager and scripted modules give the same outputs.

``next_measure``, ``fill_measure`` and ``measure_lanes`` are plain TorchScript methods for live/.
"""

from typing import Any

import cached_conv as cc
import torch
from torch import Tensor, nn

from latentlive.export.host_rate import HostRateModule
from latentlive.models.band import (
    BandRMVAE,
    gaussian_product,
    load_main_model,
    roll_to_tokens,
    sounding_pitch,
    tokens_to_roll,
)

REST, HOLD = 128, 129
OUT_HOLD, OUT_SILENCE = -2, -1  # lane tokens of the outputs besides a starting pitch
SLOTS = 3  # predictions kept per batch entry: the measures before, at and after the current one
POSITION_LIMIT = 16777216.0  # 2 ** 24: float32 positions are whole numbers up to here
LANE_LIMIT = 1.0e6
DEFAULT_VOICES = 4
MIDI_CHANNELS = (*range(1, 10), *range(11, 17))  # part i plays on the i-th of these (channel 10 is drums)


def uniform_noise(seeds: Tensor, draw: int, shape: list[int]) -> Tensor:
    """Uniform noise in (0, 1) ``[B, *shape]`` that depends only on ``seeds [B]`` (long) and ``draw``.

    An integer hash of (seed, draw, element index) instead of a generator: the same numbers in eager and
    scripted modules, on any machine.
    """
    count = 1
    for size in shape:
        count *= size
    mask = 0xFFFFFFFF
    index = torch.arange(count, dtype=torch.long, device=seeds.device).unsqueeze(0)
    x = ((seeds.unsqueeze(1) & mask) * 0x27D4EB2D + (draw + 1) * 0x165667B1 + index) & mask
    for _ in range(2):
        x = x ^ (x >> 16)
        x = (x * 0x45D9F3B) & mask
    x = x ^ (x >> 16)
    uniform = (x.double() + 0.5) / 4294967296.0
    return uniform.float().view([seeds.shape[0]] + shape)


class BandEngine(nn.Module):
    """``next`` and ``fill`` of a :class:`BandRMVAE` over signals (ratio 1), and the methods live/ calls.

    Args:
        model: the trained main model.
        part_names: the names of the parts (the labels of the lanes).
        voices: lanes per part (a mono part has 1 whatever is given).
        context: measures of history the predictions see (the task's context).
    """

    def __init__(self, model: BandRMVAE, part_names: list[str], voices: list[int], context: int) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.parts, self.steps, self.latent_size = model.parts, model.steps, model.latent_size
        self.model_ahead = model.ahead
        self.part_kinds: list[str] = list(model.part_kinds)
        self.voices: list[int] = [
            1 if k == "mono" else int(v) for k, v in zip(model.part_kinds, voices, strict=True)
        ]
        self.lane_start: list[int] = [sum(self.voices[:i]) for i in range(self.parts)]
        self.lanes = sum(self.voices)
        self.context = max(1, int(context))
        self.position_limit, self.lane_limit, self.slots = POSITION_LIMIT, LANE_LIMIT, SLOTS
        self.rest, self.hold, self.out_hold, self.out_silence = REST, HOLD, OUT_HOLD, OUT_SILENCE
        experts = self.parts if model.fusion == "poe" else 1
        batch, lanes, steps, parts = cc.MAX_BATCH_SIZE, self.lanes, self.steps, self.parts
        long = torch.long
        # The measure being recorded, per batch entry.
        self.register_buffer("played", torch.zeros(batch, dtype=long))  # its sequence number, -1 before any
        self.register_buffer("last_measure", torch.zeros(batch, dtype=long))
        self.register_buffer("last_position", torch.zeros(batch, dtype=long))
        self.register_buffer("last_lanes", torch.zeros(batch, lanes, dtype=long))
        self.register_buffer("carry", torch.zeros(batch, lanes, dtype=long))
        self.register_buffer("tokens", torch.zeros(batch, lanes, steps, dtype=long))
        # The last `context` measures as their experts, oldest first, aligned to the end.
        self.register_buffer("history_mean", torch.zeros(batch, self.context, experts, self.latent_size))
        self.register_buffer("history_logvar", torch.zeros(batch, self.context, experts, self.latent_size))
        self.register_buffer("history_mask", torch.zeros(batch, self.context, experts, dtype=torch.bool))
        self.register_buffer("history_count", torch.zeros(batch, dtype=long))
        self.register_buffer("history_carry", torch.zeros(batch, parts, dtype=long))
        # Predicted measures (newest first), as rolls and as output lanes, with their sequence numbers.
        self.register_buffer("slot_roll", torch.zeros(batch, SLOTS, parts, 3, 128, steps, dtype=torch.uint8))
        self.register_buffer("slot_lanes", torch.zeros(batch, SLOTS, lanes, steps, dtype=long))
        self.register_buffer("slot_target", torch.zeros(batch, SLOTS, dtype=long))
        self.register_buffer("draws", torch.zeros(batch, dtype=long))
        self.configure(0, int(model.ahead), 1.0)
        self.reset()

    # -- attributes ------------------------------------------------------------------------------

    @torch.jit.export
    def configure(self, part: int, ahead: int, temperature: float) -> None:
        """The nn~ attributes, each brought into its range (a NaN temperature reads 1)."""
        self.played_part = max(-1, min(self.parts - 1, part))
        self.horizon = max(1, min(2, ahead))
        self.temperature_setting = max(0.0, min(100.0, temperature)) if temperature == temperature else 1.0

    def _part(self) -> int:
        return self.played_part

    def _horizon(self) -> int:
        return self.horizon

    def _temperature(self) -> float:
        return self.temperature_setting

    # -- the model, measure by measure ----------------------------------------------------------------

    def _experts(self, rolls: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Experts of measures ``[N, P, 3, 128, S]`` with ``present [N, P]``: ``[N, E, D]`` x2, ``[N, E]``."""
        return self.model.experts_of(rolls, present)

    def _history_experts(self, history: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Experts of ``history [B, M, P, 3, 128, S]`` (M >= 1) given the parts ``present [B, P]`` of every
        measure: ``[B, M, E, D]`` x2 and ``[B, M, E]``."""
        batch, measures = history.shape[0], history.shape[1]
        flat = history.flatten(0, 1)
        present = present.to(torch.bool).repeat_interleave(measures, 0)
        mean, logvar, mask = self._experts(flat, present)
        return (
            mean.view(batch, measures, mean.shape[1], mean.shape[2]),
            logvar.view(batch, measures, mean.shape[1], mean.shape[2]),
            mask.view(batch, measures, mask.shape[1]),
        )

    def _states(self, mean: Tensor, logvar: Tensor, mask: Tensor) -> Tensor:
        """Recurrent states ``[B, M + 1, R]`` after 0..M measures given as experts ``[B, M, E, D]``: measure k
        (1-based) is fused with the prior of the state after ``max(0, k - ahead)`` measures and its posterior
        mean is fed, as ``BandRMVAE.history_states`` does."""
        states = [self.model.initial_state(mean.shape[0])]
        for k in range(mean.shape[1]):
            prior_mean, prior_logvar = self.model.prior(states[max(0, k + 1 - self.model_ahead)])
            fused, _ = gaussian_product(mean[:, k], logvar[:, k], mask[:, k], prior_mean, prior_logvar)
            states.append(self.model.advance(states[-1], fused))
        return torch.stack(states, 1)

    def _sample(self, z: Tensor, temperature: float, seeds: Tensor, draw: int, carry: Tensor) -> Tensor:
        """The measure decoded from ``z [B, D]`` and drawn with the noise of ``seeds`` / ``draw``."""
        noise = uniform_noise(seeds, draw, [self.parts, 130, self.steps])
        return self.model.sample_roll(self.model.decode(z), temperature, noise, carry)

    def _predict(
        self,
        mean: Tensor,
        logvar: Tensor,
        mask: Tensor,
        carry: Tensor,
        horizon: int,
        temperature: float,
        seeds: Tensor,
    ) -> Tensor:
        """The measure ``horizon`` (1 or 2) after a history given as experts ``[B, M, E, D]`` (M >= 1) whose
        last measure ends with the pitches ``carry [B, P]`` -> ``[B, P, 3, 128, S]``."""
        states = self._states(mean, logvar, mask)
        measures = mean.shape[1]
        if horizon == 2 and self.model_ahead == 1:  # roll out: draw the next measure, feed it, draw again
            prior_mean, prior_logvar = self.model.prior(states[:, measures])
            first = self._sample(prior_mean, temperature, seeds, 0, carry)
            present = torch.ones(first.shape[0], self.parts, dtype=torch.bool, device=first.device)
            e_mean, e_logvar, e_mask = self._experts(first, present)
            fused, _ = gaussian_product(e_mean, e_logvar, e_mask, prior_mean, prior_logvar)
            state = self.model.advance(states[:, measures], fused)
            return self._sample(
                self.model.prior(state)[0], temperature, seeds, 1, sounding_pitch(first)[:, :, -1]
            )
        # An ahead-2 model asked for the next measure takes the prior of it from one state earlier.
        source = measures if horizon == self.model_ahead else max(0, measures - 1)
        return self._sample(self.model.prior(states[:, source])[0], temperature, seeds, 0, carry)

    def _fill(
        self,
        mean: Tensor,
        logvar: Tensor,
        mask: Tensor,
        carry: Tensor,
        measure: Tensor,
        present: Tensor,
        temperature: float,
        seeds: Tensor,
    ) -> Tensor:
        """``measure [B, P, 3, 128, S]`` after a history of experts ``[B, M, E, D]`` (M >= 0) with the parts
        not ``present [B, P]`` drawn from the product of the present parts' experts and the prior."""
        states = self._states(mean, logvar, mask)
        prior_mean, prior_logvar = self.model.prior(states[:, max(0, mean.shape[1] + 1 - self.model_ahead)])
        e_mean, e_logvar, e_mask = self._experts(measure, present)
        fused, _ = gaussian_product(e_mean, e_logvar, e_mask, prior_mean, prior_logvar)
        drawn = self._sample(fused, temperature, seeds, 0, carry)
        keep = present.view(present.shape[0], present.shape[1], 1, 1, 1)
        return torch.where(keep, measure, drawn)

    # -- plain TorchScript methods for live/ ----------------------------------------------------------

    @torch.jit.export
    def next_measure(self, history: Tensor, temperature: float, seed: int) -> Tensor:
        """``history [B, M, P, 3, 128, S]`` (M >= 1; the last ``context`` are used) -> the measure ``ahead``
        (the attribute) after the last one ``[B, P, 3, 128, S]``; row b draws with seed ``seed + b``."""
        history = history[:, -self.context :].float()
        if history.shape[1] == 0:
            batch = history.shape[0]
            measure = torch.zeros(batch, self.parts, 3, 128, self.steps, device=history.device)
            nothing = torch.zeros(batch, self.parts, dtype=torch.bool, device=history.device)
            return self.fill_measure(history, measure, nothing, temperature, seed)
        every = torch.ones(history.shape[0], self.parts, dtype=torch.bool, device=history.device)
        mean, logvar, mask = self.encode_history(history, every)
        return self.next_from_encoded(mean, logvar, mask, history[:, -1], temperature, seed)

    @torch.jit.export
    def encode_history(self, history: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Measures ``[B, M, P, 3, 128, S]`` known in the parts ``present [B, P]`` (bool) -> what the
        predictions read of them: expert means and log-variances ``[B, M, E, D]`` and their mask
        ``[B, M, E]``. A player encodes each measure once, when it ends, from the parts played (its own are
        left out: they would feed back its silences), and keeps the last ``context`` (concatenated along M)
        for :meth:`next_from_encoded`."""
        return self._history_experts(history.float(), present)

    @torch.jit.export
    def next_from_encoded(
        self, mean: Tensor, logvar: Tensor, mask: Tensor, last: Tensor, temperature: float, seed: int
    ) -> Tensor:
        """:meth:`next_measure` of a history given by :meth:`encode_history` (M >= 1; the last ``context``
        are used) and its last measure ``last [B, P, 3, 128, S]`` (whose final pitches a held note continues)."""
        seeds = seed + torch.arange(mean.shape[0], dtype=torch.long, device=mean.device)
        carry = sounding_pitch(last.float())[:, :, -1]
        first = max(0, mean.shape[1] - self.context)
        return self._predict(
            mean[:, first:],
            logvar[:, first:],
            mask[:, first:],
            carry,
            self._horizon(),
            max(0.0, temperature),
            seeds,
        )

    @torch.jit.export
    def fill_measure(
        self, history: Tensor, measure: Tensor, present: Tensor, temperature: float, seed: int
    ) -> Tensor:
        """``measure [B, P, 3, 128, S]`` after ``history [B, M, P, 3, 128, S]`` (M >= 0) with the parts not
        ``present [B, P]`` (bool) filled in; the present parts are returned unchanged."""
        history = history[:, -self.context :].float()
        measure = measure.float()
        present = present.to(torch.bool)
        batch = measure.shape[0]
        seeds = seed + torch.arange(batch, dtype=torch.long, device=measure.device)
        if history.shape[1] == 0:
            experts = 1 if self.model.fusion == "concat" else self.parts
            mean = torch.zeros(batch, 0, experts, self.latent_size, device=measure.device)
            mask = torch.zeros(batch, 0, experts, dtype=torch.bool, device=measure.device)
            carry = torch.full((batch, self.parts), -1, dtype=torch.long, device=measure.device)
            return self._fill(mean, mean, mask, carry, measure, present, max(0.0, temperature), seeds)
        every = torch.ones(batch, self.parts, dtype=torch.bool, device=measure.device)
        mean, logvar, mask = self._history_experts(history, every)
        carry = sounding_pitch(history[:, -1])[:, :, -1]
        return self._fill(mean, logvar, mask, carry, measure, present, max(0.0, temperature), seeds)

    @torch.jit.export
    def measure_lanes(self, roll: Tensor) -> Tensor:
        """A measure ``[B, P, 3, 128, S]`` -> output lanes ``[B, L, S]`` (long): the pitch where a note starts,
        -2 while it holds, -1 for silence. A poly part's onsets take its free voices, highest pitch to the
        lowest-numbered voice; a voice holds its note for its duration (within the measure); onsets beyond
        the free voices are dropped, and a pitch that starts again ends its old voice first."""
        lanes: list[Tensor] = []
        for i, kind in enumerate(self.part_kinds):
            if kind == "mono":
                tokens = roll_to_tokens(roll[:, i])
                hold = torch.full_like(tokens, self.out_hold)
                silence = torch.full_like(tokens, self.out_silence)
                lanes.append(
                    torch.where(tokens < 128, tokens, torch.where(tokens == self.hold, hold, silence))[
                        :, None
                    ]
                )
            else:
                lanes.append(self._voice_lanes(roll[:, i], self.voices[i]))
        return torch.cat(lanes, 1)

    def _voice_lanes(self, roll: Tensor, voices: int) -> Tensor:
        """A poly part's roll ``[B, 3, 128, S]`` -> ``[B, V, S]`` voice lanes (see :meth:`measure_lanes`)."""
        batch, steps = roll.shape[0], roll.shape[-1]
        onsets = roll[:, 0] > 0.5
        pitches = torch.arange(128, device=roll.device).view(1, 128, 1)
        # The V highest onset pitches of every step (-1: none) and their lengths within the measure.
        ranked, order = torch.where(onsets, pitches, torch.full_like(pitches, -1)).topk(voices, dim=1)
        room = steps - torch.arange(steps, device=roll.device).view(1, 1, steps)
        lengths = torch.round(roll[:, 2]).clamp(min=1.0).long().gather(1, order).clamp(max=room)
        pitch = torch.full((batch, voices), -1, dtype=torch.long, device=roll.device)
        remaining = torch.zeros(batch, voices, dtype=torch.long, device=roll.device)
        columns: list[Tensor] = []
        for s in range(steps):
            restarts = (pitch >= 0) & onsets[:, :, s].gather(1, pitch.clamp(min=0))
            free = (remaining <= 0) | restarts
            rank = (free.long().cumsum(1) - 1).clamp(min=0)  # the k-th free voice takes the k-th onset
            new = ranked[:, :, s].gather(1, rank)
            taken = free & (new >= 0)
            pitch = torch.where(taken, new, torch.where(free, torch.full_like(pitch, -1), pitch))
            remaining = torch.where(taken, lengths[:, :, s].gather(1, rank), remaining)
            remaining = torch.where(free & ~taken, torch.zeros_like(remaining), remaining)
            held = torch.where(
                remaining > 0, torch.full_like(pitch, self.out_hold), torch.full_like(pitch, self.out_silence)
            )
            columns.append(torch.where(taken, new, held))
            remaining = remaining - 1
        return torch.stack(columns, 2)

    # -- the nn~ methods -----------------------------------------------------------------------------

    @torch.jit.export
    def stream(self, x: Tensor, fill: bool) -> Tensor:
        """Record the lanes of ``x [B, L + 1, T]`` step by step, close the measure at a measure change (the
        last one in the buffer), and read the predicted lanes at each sample's step."""
        batch, length, lanes = x.shape[0], x.shape[-1], self.lanes
        position = torch.nan_to_num(x[:, lanes]).clamp(-self.position_limit, self.position_limit)
        sixteenth = torch.floor(position).long()
        measure = torch.div(sixteenth, self.steps, rounding_mode="floor")
        step = sixteenth - measure * self.steps
        pitch = torch.round(torch.nan_to_num(x[:, :lanes]).clamp(-self.lane_limit, self.lane_limit)).long()
        pitch = torch.where((pitch >= 0) & (pitch < 128), pitch, torch.full_like(pitch, -1))
        self._start(batch, measure[:, 0], sixteenth[:, 0])
        previous_measure = torch.cat([self.last_measure[:batch, None], measure[:, :-1]], 1)
        previous_sixteenth = torch.cat([self.last_position[:batch, None], sixteenth[:, :-1]], 1)
        previous_pitch = torch.cat([self.last_lanes[:batch, :, None], pitch[:, :, :-1]], 2)
        # A new measure begins where the measure index changes or the position moves back (a loop).
        change = (measure != previous_measure) | (sixteenth < previous_sixteenth)
        times = torch.arange(length, device=x.device)
        last_change = torch.where(change, times, torch.full_like(times, -1)).amax(1)
        closes = last_change >= 0
        before = times.unsqueeze(0) < last_change.unsqueeze(1)
        sequence_before = self.played[:batch].clone()
        tokens = self._record(self.tokens[:batch], pitch, previous_pitch, step, before)
        if bool(closes.any()):
            index = closes.nonzero().squeeze(1)
            self._close(index, tokens[index], self.carry[index], fill)
            at_change = last_change.clamp(min=0).view(batch, 1, 1).expand(batch, lanes, 1)
            carry_next = previous_pitch.gather(2, at_change).squeeze(2)
            self.carry[:batch] = torch.where(closes.unsqueeze(1), carry_next, self.carry[:batch])
            tokens = torch.where(closes.view(batch, 1, 1), torch.full_like(tokens, self.rest), tokens)
            self.played[:batch] = self.played[:batch] + closes.long()
        self.tokens[:batch] = self._record(tokens, pitch, previous_pitch, step, ~before)
        self.last_measure[:batch] = measure[:, -1]
        self.last_position[:batch] = sixteenth[:, -1]
        self.last_lanes[:batch] = pitch[:, :, -1]
        sequence = torch.where(before, sequence_before.unsqueeze(1), self.played[:batch].unsqueeze(1))
        return self._read(sequence, step).float()

    def _start(self, batch: int, measure: Tensor, sixteenth: Tensor) -> None:
        """Entries that have seen no sample yet begin their first measure at this buffer's first sample."""
        fresh = self.played[:batch] < 0
        self.last_measure[:batch] = torch.where(fresh, measure, self.last_measure[:batch])
        self.last_position[:batch] = torch.where(fresh, sixteenth, self.last_position[:batch])
        self.played[:batch] = torch.where(fresh, torch.zeros_like(measure), self.played[:batch])

    def _record(self, tokens: Tensor, pitch: Tensor, previous: Tensor, step: Tensor, mask: Tensor) -> Tensor:
        """Write the samples where ``mask [B, T]`` into the steps ``step [B, T]`` of ``tokens [B, L, S]``:
        the last pitch taken during a step starts a note there; else the step holds if a pitch sounds at its
        last sample (so far), else it rests. A step already given an onset keeps it."""
        batch, lanes, length = pitch.shape[0], pitch.shape[1], pitch.shape[2]
        where = mask.unsqueeze(1)
        onset = (pitch != previous) & (pitch >= 0) & where
        times = torch.arange(length, device=pitch.device).view(1, 1, length).expand(batch, lanes, length)
        index = step.unsqueeze(1).expand(batch, lanes, length)
        none = torch.full((batch, lanes, self.steps), -1, dtype=torch.long, device=pitch.device)
        unset = torch.full_like(times, -1)
        last_onset = none.scatter_reduce(
            2, index, torch.where(onset, times, unset), "amax", include_self=True
        )
        onset_pitch = pitch.gather(2, last_onset.clamp(min=0))
        onset_pitch = torch.where(last_onset >= 0, onset_pitch, torch.full_like(onset_pitch, -1))
        last_seen = none.scatter_reduce(2, index, torch.where(where, times, unset), "amax", include_self=True)
        present = last_seen >= 0
        holds = present & (pitch.gather(2, last_seen.clamp(min=0)) >= 0)
        quiet = torch.where(holds, torch.full_like(tokens, self.hold), torch.full_like(tokens, self.rest))
        kept = torch.where(tokens < 128, tokens, quiet)
        new = torch.where(onset_pitch >= 0, onset_pitch, kept)
        return torch.where(present, new, tokens)

    def _lanes_roll(self, tokens: Tensor, carry: Tensor) -> Tensor:
        """Recorded lane tokens ``[N, L, S]`` (a HOLD at step 0 continues ``carry [N, L]``) -> the measure
        ``[N, P, 3, 128, S]``; a poly part is the union of its voices."""
        rolls = tokens_to_roll(tokens, carry)
        parts: list[Tensor] = []
        for i in range(self.parts):
            start = self.lane_start[i]
            parts.append(rolls[:, start : start + self.voices[i]].amax(1))
        return torch.stack(parts, 1)

    def _close(self, index: Tensor, tokens: Tensor, carry: Tensor, fill: bool) -> None:
        """The measure recorded by the entries ``index [N]`` ends: it enters their history and the next
        prediction (``next``) or the filled measure (``fill``) takes a slot."""
        count = index.shape[0]
        part = self._part()
        played = torch.arange(self.parts, device=index.device) == part
        if part < 0:  # every part is played
            played = torch.ones_like(played)
        played = played.view(1, self.parts).expand(count, self.parts)
        recorded = self._lanes_roll(tokens, carry)
        sequence = self.played[index]
        seeds = self.draws[index]
        temperature = self._temperature()
        if fill:
            measure = torch.where(
                played.view(count, self.parts, 1, 1, 1), recorded, torch.zeros_like(recorded)
            )
            filled = self._grouped(index, measure, played, temperature, seeds, 0)
            self._push_history(index, filled, torch.ones_like(played))
            self._push_slot(index, sequence + 1, filled)
        else:
            guess = self._slot_roll(index, sequence)
            closed = torch.where(played.view(count, self.parts, 1, 1, 1), recorded, guess)
            self._push_history(index, closed, played)  # the module's own parts only carry held notes over
            horizon = self._horizon()
            predicted = self._grouped(index, closed, played, temperature, seeds, horizon)
            self._push_slot(index, sequence + horizon, predicted)
        self.draws.index_copy_(0, index, seeds + 1)

    def _grouped(
        self, index: Tensor, measure: Tensor, present: Tensor, temperature: float, seeds: Tensor, horizon: int
    ) -> Tensor:
        """Predictions (``horizon`` 1 or 2) or fills (``horizon`` 0) for the entries ``index``, batched
        over the entries with the same number of history measures."""
        counts = self.history_count[index]
        result = torch.zeros_like(measure)
        for c in range(self.context + 1):
            rows = (counts == c).nonzero().squeeze(1)
            if rows.shape[0] == 0:
                continue
            entries = index[rows]
            first = self.context - c
            mean = self.history_mean[entries, first:]
            logvar = self.history_logvar[entries, first:]
            mask = self.history_mask[entries, first:]
            carry = self.history_carry[entries]
            if horizon == 0:
                drawn = self._fill(
                    mean, logvar, mask, carry, measure[rows], present[rows], temperature, seeds[rows]
                )
            else:
                drawn = self._predict(mean, logvar, mask, carry, horizon, temperature, seeds[rows])
            result.index_copy_(0, rows, drawn)
        return result

    def _push_history(self, index: Tensor, rolls: Tensor, present: Tensor) -> None:
        """Append measures ``[N, P, 3, 128, S]``, encoded from the parts ``present [N, P]``, to the history of
        the entries ``index``; the pitches sounding at their ends (every part) carry over."""
        mean, logvar, mask = self._experts(rolls, present)
        self.history_mean.index_copy_(0, index, torch.cat([self.history_mean[index, 1:], mean[:, None]], 1))
        self.history_logvar.index_copy_(
            0, index, torch.cat([self.history_logvar[index, 1:], logvar[:, None]], 1)
        )
        self.history_mask.index_copy_(0, index, torch.cat([self.history_mask[index, 1:], mask[:, None]], 1))
        counts = (self.history_count[index] + 1).clamp(max=self.context)
        self.history_count.index_copy_(0, index, counts)
        self.history_carry.index_copy_(0, index, sounding_pitch(rolls)[:, :, -1])

    def _push_slot(self, index: Tensor, target: Tensor, roll: Tensor) -> None:
        """Keep the measure ``roll [N, P, 3, 128, S]`` to play as the measure numbered ``target [N]``."""
        stored = torch.round(roll).clamp(0.0, 255.0).to(torch.uint8)
        lanes = self.measure_lanes(roll)
        self.slot_roll.index_copy_(0, index, torch.cat([stored.unsqueeze(1), self.slot_roll[index, :-1]], 1))
        self.slot_lanes.index_copy_(0, index, torch.cat([lanes.unsqueeze(1), self.slot_lanes[index, :-1]], 1))
        targets = torch.cat([target.unsqueeze(1), self.slot_target[index, :-1]], 1)
        self.slot_target.index_copy_(0, index, targets)

    def _slot_roll(self, index: Tensor, sequence: Tensor) -> Tensor:
        """The newest prediction for the measure numbered ``sequence [N]`` of the entries ``index``, as
        ``[N, P, 3, 128, S]`` (zeros where there is none)."""
        match = self.slot_target[index] == sequence.unsqueeze(1)
        slot = match.long().argmax(1)
        rolls = self.slot_roll[index].float()
        chosen = rolls[torch.arange(index.shape[0], device=index.device), slot]
        found = match.any(1).view(-1, 1, 1, 1, 1)
        return torch.where(found, chosen, torch.zeros_like(chosen))

    def _read(self, sequence: Tensor, step: Tensor) -> Tensor:
        """Output lanes ``[B, L, T]`` at the measure numbers ``sequence [B, T]`` and steps ``step [B, T]``."""
        batch, length = sequence.shape[0], sequence.shape[1]
        match = self.slot_target[:batch].unsqueeze(1) == sequence.unsqueeze(2)  # [B, T, slots]
        found = match.any(2)
        slot = match.long().argmax(2)
        table = (
            self.slot_lanes[:batch].permute(0, 2, 1, 3).reshape(batch, self.lanes, self.slots * self.steps)
        )
        where = (slot * self.steps + step).unsqueeze(1).expand(batch, self.lanes, length)
        lanes = table.gather(2, where)
        return torch.where(found.unsqueeze(1), lanes, torch.full_like(lanes, self.out_silence))

    @torch.jit.export
    def reset(self) -> None:
        """Forget every batch entry's recording, history and predictions."""
        self.played.fill_(-1)
        self.last_measure.zero_()
        self.last_position.zero_()
        self.last_lanes.fill_(-1)
        self.carry.fill_(-1)
        self.tokens.fill_(self.rest)
        self.history_mean.zero_()
        self.history_logvar.zero_()
        self.history_mask.zero_()
        self.history_count.zero_()
        self.history_carry.fill_(-1)
        self.slot_roll.zero_()
        self.slot_lanes.fill_(self.out_silence)
        self.slot_target.fill_(-1)
        self.draws.zero_()


@torch.jit.interface
class BandPaths(nn.Module):
    """What :class:`BandExport` calls on :class:`BandEngine`, through an interface so that each path keeps
    its own TorchScript executor for the warm-up to compile (``export.host_rate``)."""

    def configure(self, part: int, ahead: int, temperature: float) -> None:
        pass

    def stream(self, x: Tensor, fill: bool) -> Tensor:
        pass

    def next_measure(self, history: Tensor, temperature: float, seed: int) -> Tensor:
        pass

    def encode_history(self, history: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        pass

    def next_from_encoded(
        self, mean: Tensor, logvar: Tensor, mask: Tensor, last: Tensor, temperature: float, seed: int
    ) -> Tensor:
        pass

    def fill_measure(
        self, history: Tensor, measure: Tensor, present: Tensor, temperature: float, seed: int
    ) -> Tensor:
        pass

    def measure_lanes(self, roll: Tensor) -> Tensor:
        pass

    def reset(self) -> None:
        pass


class BandExport(HostRateModule):
    """``next`` and ``fill`` for nn~ (attributes ``temperature``, ``part``, ``ahead``, ``latency``) and the plain
    methods for live/, over a :class:`BandEngine`. The host rate does not matter to the band; the devices set
    ``host_rate`` all the same, which warms the module up (``export.host_rate``)."""

    engine: BandPaths

    def __init__(self, model: BandRMVAE, part_names: list[str], voices: list[int], context: int) -> None:
        super().__init__(None)
        engine = BandEngine(model, part_names, voices, context)
        self.voices, self.lanes, self.context = engine.voices, engine.lanes, engine.context
        self.steps = engine.steps
        self.engine = torch.jit.script(engine)
        self.register_attribute("temperature", 1.0)
        self.register_attribute("part", 0)
        self.register_attribute("ahead", int(model.ahead))
        self.register_attribute("latency", 0)  # samples; predictions are ready within the buffer
        self.output_guard = True
        ins, outs = [], []
        for name, voice_count in zip(part_names, self.voices, strict=True):
            for v in range(voice_count):
                lane = name if voice_count == 1 else f"{name} voice {v + 1}"
                ins.append(f"(signal) {lane} pitch")
                outs.append(f"(signal) {lane} token")
        ins.append("(signal) position in sixteenths")
        self.register_method("next", self.lanes + 1, 1, self.lanes, 1, ins, outs)
        self.register_method("fill", self.lanes + 1, 1, self.lanes, 1, ins, outs)
        self.reset()  # registration ran each method on silence

    def _configure(self) -> None:
        self.engine.configure(int(self.part[0]), int(self.ahead[0]), float(self.temperature[0]))

    @torch.jit.export
    def next(self, x: Tensor) -> Tensor:
        """``[B, L + 1, T]`` -> ``[B, L, T]``: in each measure, the prediction made ``ahead`` measures before."""
        self._configure()
        return self.engine.stream(x, False)

    @torch.jit.export
    def fill(self, x: Tensor) -> Tensor:
        """``[B, L + 1, T]`` -> ``[B, L, T]``: in each measure, the one before with the other parts filled."""
        self._configure()
        return self.engine.stream(x, True)

    @torch.jit.export
    def next_measure(self, history: Tensor, temperature: float, seed: int) -> Tensor:
        """See :meth:`BandEngine.next_measure` (``ahead`` is the attribute)."""
        self._configure()
        return self.engine.next_measure(history, temperature, seed)

    @torch.jit.export
    def encode_history(self, history: Tensor, present: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """See :meth:`BandEngine.encode_history`."""
        return self.engine.encode_history(history, present)

    @torch.jit.export
    def next_from_encoded(
        self, mean: Tensor, logvar: Tensor, mask: Tensor, last: Tensor, temperature: float, seed: int
    ) -> Tensor:
        """See :meth:`BandEngine.next_from_encoded` (``ahead`` is the attribute)."""
        self._configure()
        return self.engine.next_from_encoded(mean, logvar, mask, last, temperature, seed)

    @torch.jit.export
    def fill_measure(
        self, history: Tensor, measure: Tensor, present: Tensor, temperature: float, seed: int
    ) -> Tensor:
        """See :meth:`BandEngine.fill_measure`."""
        return self.engine.fill_measure(history, measure, present, temperature, seed)

    @torch.jit.export
    def measure_lanes(self, roll: Tensor) -> Tensor:
        """See :meth:`BandEngine.measure_lanes`."""
        return self.engine.measure_lanes(roll)

    @torch.jit.export
    def guard_output(self, on: bool) -> None:
        """Nothing to switch: the lanes are read from tables of whole tokens, and ``next`` / ``fill`` answer
        the raw output whatever ``on`` says (the contract calls this on every export)."""
        self.output_guard = on

    def use_host_rate(self, rate: int) -> None:
        pass  # the band keeps time in sixteenths, not samples

    def warm_up(self) -> None:
        """Both streams through a few measures (one a buffer: every buffer closes a measure), then afresh."""
        x = torch.full((1, self.lanes + 1, self.warm_up_buffer), -1.0)
        for fill in (False, True):
            for measure in range(self.warm_up_calls + 1):
                x[0, self.lanes] = float(measure * self.steps)
                self.engine.stream(x, fill)
            self.engine.reset()

    @torch.jit.export
    def reset(self) -> None:
        """Forget every batch entry's recording, history and predictions."""
        self.engine.reset()


def build_band_export(
    checkpoint: dict[str, Any], streaming: bool = True
) -> tuple[BandExport, dict[str, Any]]:
    """The wrapper and the metadata of the exported file, from a trainer checkpoint (the same module with
    ``streaming`` or without: the model has no cached-conv layers)."""
    model = load_main_model(checkpoint["model_args"], checkpoint["model_state"])
    facts = checkpoint["metadata"]
    part_names = [str(name) for name in facts["part_names"]]
    default_voices = [1 if kind == "mono" else DEFAULT_VOICES for kind in model.part_kinds]
    voices = [int(v) for v in facts.get("voices") or default_voices]
    context = int(facts.get("context", 8))
    wrapper = BandExport(model, part_names, voices, context)
    lane_parts = [i for i, count in enumerate(wrapper.voices) for _ in range(count)]
    metadata = {
        "model": "band",
        "part_names": part_names,
        "part_kinds": list(model.part_kinds),
        "voices": list(wrapper.voices),
        "lanes": wrapper.lanes,
        "lane_parts": lane_parts,
        "midi_channels": [MIDI_CHANNELS[i % len(MIDI_CHANNELS)] for i in range(model.parts)],
        "steps": model.steps,
        "ahead": model.ahead,
        "context": wrapper.context,
        "latent_size": model.latent_size,
        "transpose": facts.get("transpose", "none"),
        "attributes": {"temperature": 1.0, "part": 0, "ahead": model.ahead, "latency": 0},
        "sample_rate": None,
        "latency_samples": 0,
        # Output lanes are pitches 0..127, -1 (silence) or -2 (hold).
        "output_bounds": {"next": 127.0, "fill": 127.0},
        # the last `context` measures, by design: tests/test_band_export.py checks that it recovers from them
        "state_window": {"next": None, "fill": None},
    }
    return wrapper, metadata
