"""Export of the drums run: the nn~ contract on the saved file, the host harness, the signal encoding."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_process import run_contract

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.runs import load_checkpoint
from latentlive.export.exporter import export_run
from latentlive.export.host import NNHost, load_ts, threaded_delay
from latentlive.export.metadata import read_metadata
from latentlive.models.drums import PatternVAE

ROOT = Path(__file__).resolve().parents[1]


def _decode_input(z: list[float], steps: torch.Tensor, style: float) -> torch.Tensor:
    """``[1, D + 2, T]``: constant latents and style, the given step positions."""
    x = torch.zeros(1, len(z) + 2, len(steps))
    x[0, : len(z)] = torch.tensor(z).unsqueeze(1)
    x[0, len(z)] = steps
    x[0, len(z) + 1] = style
    return x


@pytest.fixture(scope="module")
def eager_model(drums_run: Path) -> PatternVAE:
    checkpoint = load_checkpoint(drums_run / "checkpoints" / "last.pt")
    model = PatternVAE(**checkpoint["model_args"])
    model.load_state_dict(checkpoint["model_state"])
    return model.eval()


def test_saved_file_honours_the_contract_in_a_separate_torch_process(drums_ts: Path) -> None:
    result = run_contract(drums_ts)
    assert result["problems"] == []
    assert sorted(result["methods"]) == ["decode", "encode", "forward"]
    assert result["torch_version"].startswith("2.5")


def test_a_file_that_fails_the_fresh_process_check_is_not_kept(
    drums_run: Path, drums_ts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter keeps a file only when ``python -m latentlive.export.contract`` passes it in a fresh
    process (so the export tests may read that verdict from the report): a drums file that declares no
    state window, which only that check reads, is refused in one line and the earlier export stays."""
    run = tmp_path / "drums"
    shutil.copytree(drums_run, run)
    before = (run / "export" / "drums.ts").read_bytes()
    real_load = registry.load

    def without_state_window(reference: str):
        build = real_load(reference)

        def build_without(checkpoint, streaming=True):
            wrapper, metadata = build(checkpoint, streaming)
            del metadata["state_window"]
            return wrapper, metadata

        return build_without

    monkeypatch.setattr(registry, "load", without_state_window)
    with pytest.raises(UserError, match="breaks the nn~ contract: .*declares no state_window"):
        export_run(run, streaming=True)
    assert (run / "export" / "drums.ts").read_bytes() == before
    assert sorted(p.name for p in (run / "export").iterdir()) == ["drums.ts", "report.json"]


def test_report_and_metadata(drums_run: Path, drums_ts: Path) -> None:
    report = json.loads((drums_run / "export" / "report.json").read_text())
    assert report["latency_samples"] == 0 and report["torch_version"].startswith("2.5")
    assert report["file_size_bytes"] == drums_ts.stat().st_size
    assert report["methods"]["decode"] == {
        "in_channels": 6,
        "in_ratio": 1,
        "out_channels": 18,
        "out_ratio": 1,
    }
    assert report["methods"]["encode"] == {
        "in_channels": 11,
        "in_ratio": 1,
        "out_channels": 5,
        "out_ratio": 1,
    }
    for method in ("decode", "encode", "forward"):
        timing = report["per_buffer_2048_one_thread"][method]
        assert 0 < timing["wall_ms_p50"] <= timing["wall_ms_p99"] and timing["cpu_ms_mean"] > 0
    metadata = read_metadata(drums_ts)
    assert metadata["model"] == "drums" and metadata["latent_size"] == 4 and metadata["steps"] == 16
    assert len(metadata["style_names"]) >= 8 and metadata["gm_notes"][0] == 36
    assert metadata["streaming"] is True and metadata["cached_conv"] is True
    assert metadata["groove"] is True and metadata["infer_style"] == -2
    checkpoint = load_checkpoint(drums_run / "checkpoints" / "last.pt")
    assert metadata["class_thresholds"] == checkpoint["metadata"].get("class_thresholds", [0.5] * 9)


def _eager_groove(model: PatternVAE, z: list[float], style: int) -> tuple[torch.Tensor, ...]:
    """Hit probabilities, velocities and offsets ``[9, S]`` of the eager model."""
    with torch.no_grad():
        logits, velocity, offset = model.decode_groove(torch.tensor([z]), torch.tensor([style]))
    return torch.sigmoid(logits)[0], velocity[0], offset[0]


def test_decode_through_the_host_harness_plays_the_decoded_pattern(
    drums_ts: Path, eager_model: PatternVAE
) -> None:
    module = load_ts(drums_ts)
    module.set_threshold(0.0)  # every cell plays, so the comparison covers every cell
    z, style = [0.7, -1.2, 0.3, 2.0], 2
    _, velocity, offset = _eager_groove(eager_model, z, style)
    samples_per_step = 300  # not a divisor of the buffers: steps straddle buffer boundaries
    steps = torch.arange(16 * samples_per_step) // samples_per_step
    signal = _decode_input(z, steps.float(), style)
    for buffer in (64, 2048):
        out = NNHost(module, "decode", buffer_size=buffer).process(signal)[0]
        assert out.shape == (18, len(steps))
        assert torch.allclose(out[:9], velocity.clamp_min(1 / 127)[:, steps], atol=1e-5), buffer
        assert torch.allclose(out[9:], offset[:, steps], atol=1e-5), buffer


def test_threshold_temperature_and_style_attributes(drums_ts: Path, eager_model: PatternVAE) -> None:
    module = load_ts(drums_ts)
    thresholds = torch.tensor(read_metadata(drums_ts)["class_thresholds"]).unsqueeze(1)
    z = [0.0] * 4
    signal = _decode_input(z, torch.arange(16).float(), 1)
    probs, _, _ = _eager_groove(eager_model, z, 1)
    for knob, temperature, expected in (
        (0.5, 1.0, probs >= thresholds),  # the run's own per-class thresholds
        (0.25, 1.0, probs >= thresholds / 2),  # the knob lowers all of them
        (0.75, 1.0, probs >= thresholds + (1 - thresholds) / 2),
        (0.5, 0.25, torch.sigmoid(torch.logit(probs.double()) / 0.25) >= thresholds),  # sharper
        (1.0, 1.0, torch.zeros_like(probs, dtype=torch.bool)),
    ):
        module.set_threshold(knob)
        module.set_temperature(temperature)
        out = module.decode(signal)[0]
        decided = ((probs - thresholds).abs() > 1e-4) | (knob == 1.0)  # cells a float rounding cannot flip
        assert torch.equal((out[:9] > 0)[decided], expected[decided]), (knob, temperature)
        assert (out[9:][out[:9] == 0] == 0).all()  # no hit, no offset
    module.set_temperature(1.0)
    module.set_threshold(0.0)
    out_of_range = module.decode(_decode_input(z, torch.arange(16).float(), 99))
    no_style = module.decode(_decode_input(z, torch.arange(16).float(), -1))
    assert torch.equal(out_of_range, no_style)


def test_encode_learns_a_clip_and_forward_reconstructs_it(drums_ts: Path, eager_model: PatternVAE) -> None:
    module = load_ts(drums_ts)
    velocity = torch.zeros(9, 16)
    velocity[0, ::4] = 0.9  # four on the floor
    velocity[1, 4::8] = 0.7  # backbeat
    velocity[2, 2::4] = 0.4  # off-beat hats
    samples_per_step = 100
    steps = torch.arange(16 * samples_per_step) // samples_per_step
    levels = velocity[:, steps]  # the device holds a hit's velocity for its whole step
    encode_in = torch.cat([levels, steps.float().unsqueeze(0), torch.full((1, len(steps)), -1.0)]).unsqueeze(
        0
    )
    latent = NNHost(module, "encode", buffer_size=256).process(encode_in)[0]
    with torch.no_grad():
        hits = (velocity > 0).float().unsqueeze(0)
        mean, _ = eager_model.encode(hits, torch.tensor([-1]), velocity.unsqueeze(0), torch.zeros_like(hits))
    assert torch.allclose(latent[:4, -1], mean[0], atol=1e-5)
    assert latent[4, -1] == -1  # the style it used: none

    module.reset()
    module.set_threshold(0.0)
    levels_out = NNHost(module, "forward", buffer_size=256).process(encode_in)[0]
    _, velocity_out, offset_out = _eager_groove(eager_model, mean[0].tolist(), -1)
    last_pass = slice(len(steps) - samples_per_step, None)  # the whole pattern is recorded by then
    expected = torch.cat([velocity_out.clamp_min(1 / 127), offset_out])[:, steps]
    assert torch.allclose(levels_out[:, last_pass], expected[:, last_pass], atol=1e-5)


def test_batch_entries_record_their_own_patterns(drums_ts: Path) -> None:
    module = load_ts(drums_ts)
    x = torch.zeros(4, 11, 16)
    x[:, 9] = torch.arange(16).float()
    x[:, 10] = -1.0
    x[1, 0, ::4] = 1.0
    x[3, 1, 4::8] = 1.0
    latents = module.encode(x)[:, :, -1]
    assert torch.equal(latents[0], latents[2])  # two silent entries agree
    assert not torch.equal(latents[0], latents[1]) and not torch.equal(latents[1], latents[3])


def test_threaded_host_delays_by_two_buffers_minus_a_block(drums_ts: Path) -> None:
    module = load_ts(drums_ts)
    module.set_threshold(0.0)
    signal = _decode_input([0.0] * 4, (torch.arange(4096) // 256).float(), 0)
    plain = NNHost(module, "decode", buffer_size=512).process(signal)
    threaded = NNHost(module, "decode", buffer_size=512, threaded=True).process(signal)
    delay = threaded_delay(512)
    assert delay == 960
    assert torch.equal(threaded[..., delay:], plain[..., : 4096 - delay])


def test_export_of_a_missing_or_broken_run_fails_cleanly_and_keeps_the_old_file(
    tmp_path: Path, drums_run: Path
) -> None:
    with pytest.raises(UserError, match="no such run"):
        export_run(tmp_path / "nope")
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "config.gin").write_text((drums_run / "config.gin").read_text())
    (broken / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    (broken / "export").mkdir()
    previous = broken / "export" / "broken.ts"
    previous.write_bytes(b"previous export")
    with pytest.raises(UserError, match="unreadable checkpoint"):
        export_run(broken)
    assert previous.read_bytes() == b"previous export"
    assert sorted(p.name for p in (broken / "export").iterdir()) == ["broken.ts"]
