"""Export of the drums run: the nn~ contract on the saved file, the host harness, the signal encoding."""

import json
from pathlib import Path

import pytest
import torch
from cli_process import run_contract

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


def test_report_and_metadata(drums_run: Path, drums_ts: Path) -> None:
    report = json.loads((drums_run / "export" / "report.json").read_text())
    assert report["latency_samples"] == 0 and report["torch_version"].startswith("2.5")
    assert report["file_size_bytes"] == drums_ts.stat().st_size
    assert report["methods"]["decode"] == {"in_channels": 6, "in_ratio": 1, "out_channels": 9, "out_ratio": 1}
    for method in ("decode", "encode", "forward"):
        timing = report["per_buffer_2048_one_thread"][method]
        assert 0 < timing["wall_ms_p50"] <= timing["wall_ms_p99"] and timing["cpu_ms_mean"] > 0
    metadata = read_metadata(drums_ts)
    assert metadata["model"] == "drums" and metadata["latent_size"] == 4 and metadata["steps"] == 16
    assert len(metadata["style_names"]) >= 8 and metadata["gm_notes"][0] == 36
    assert metadata["streaming"] is True and metadata["cached_conv"] is True


def test_decode_through_the_host_harness_plays_the_decoded_pattern(
    drums_ts: Path, eager_model: PatternVAE
) -> None:
    module = load_ts(drums_ts)
    module.set_threshold(0.0)  # every level visible, so the comparison covers every cell
    z, style = [0.7, -1.2, 0.3, 2.0], 2
    with torch.no_grad():
        probs = torch.sigmoid(eager_model.decode(torch.tensor([z]), torch.tensor([style])))[0]  # [9, 16]
    samples_per_step = 300  # not a divisor of the buffers: steps straddle buffer boundaries
    steps = torch.arange(16 * samples_per_step) // samples_per_step
    signal = _decode_input(z, steps.float(), style)
    for buffer in (64, 2048):
        out = NNHost(module, "decode", buffer_size=buffer).process(signal)[0]
        assert out.shape == (9, len(steps))
        expected = probs[:, steps]
        assert torch.allclose(out, expected, atol=1e-5), buffer


def test_threshold_temperature_and_style_attributes(drums_ts: Path, eager_model: PatternVAE) -> None:
    module = load_ts(drums_ts)
    signal = _decode_input([0.0] * 4, torch.arange(16).float(), 1)
    module.set_threshold(0.5)
    module.set_temperature(1.0)
    levels = module.decode(signal)[0]
    assert ((levels == 0) | (levels >= 0.5)).all()
    module.set_temperature(0.25)  # sharper: every level moves away from 0.5
    module.set_threshold(0.0)
    sharp = module.decode(signal)[0]
    module.set_temperature(1.0)
    soft = module.decode(signal)[0]
    assert ((sharp - 0.5).abs() >= (soft - 0.5).abs() - 1e-6).all()
    out_of_range = module.decode(_decode_input([0.0] * 4, torch.arange(16).float(), 99))
    no_style = module.decode(_decode_input([0.0] * 4, torch.arange(16).float(), -1))
    assert torch.equal(out_of_range, no_style)


def test_encode_learns_a_clip_and_forward_reconstructs_it(drums_ts: Path, eager_model: PatternVAE) -> None:
    module = load_ts(drums_ts)
    pattern = torch.zeros(9, 16)
    pattern[0, ::4] = 1  # four on the floor
    pattern[1, 4::8] = 1  # backbeat
    pattern[2, 2::4] = 1  # off-beat hats
    samples_per_step = 100
    steps = torch.arange(16 * samples_per_step) // samples_per_step
    hits = pattern[:, steps]  # the device holds a hit for its whole step
    encode_in = torch.cat([hits, steps.float().unsqueeze(0)]).unsqueeze(0)
    latent = NNHost(module, "encode", buffer_size=256).process(encode_in)[0]
    with torch.no_grad():
        mean, _ = eager_model.encode(pattern.unsqueeze(0), torch.tensor([-1]))
    assert torch.allclose(latent[:, -1], mean[0], atol=1e-5)

    module.reset()
    module.set_threshold(0.0)
    forward_in = torch.cat([encode_in, torch.full((1, 1, len(steps)), -1.0)], dim=1)
    levels = NNHost(module, "forward", buffer_size=256).process(forward_in)[0]
    with torch.no_grad():
        expected = torch.sigmoid(eager_model.decode(mean, torch.tensor([-1])))[0][:, steps]
    last_pass = slice(len(steps) - samples_per_step, None)  # the whole pattern is recorded by then
    assert torch.allclose(levels[:, last_pass], expected[:, last_pass], atol=1e-5)


def test_batch_entries_record_their_own_patterns(drums_ts: Path) -> None:
    module = load_ts(drums_ts)
    x = torch.zeros(4, 10, 16)
    x[:, 9] = torch.arange(16).float()
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
