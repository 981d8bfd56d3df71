"""A drums model with 16 latents (gin/drums.gin's size) end to end: export, the device, the player's CCs."""

from pathlib import Path

import mido
import numpy as np
from list_output import ListOutput

from latentlive.cli import main
from latentlive.export.metadata import read_metadata
from latentlive.live.drum_model import DrumModel
from latentlive.live.drum_player import CC_Z_FIRST, CC_Z_MORE_FIRST, DrumPlayer, cc_to_latent
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.drums import build_drums_device
from latentlive.m4l_devices.validate import validate_device

ROOT = Path(__file__).resolve().parents[1]


def test_sixteen_latents_export_build_a_device_and_move_with_every_cc(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    train = ["train", "--gin", str(ROOT / "gin/drums_tiny.gin"), "--name", "d16", "--out", str(runs)]
    assert main([*train, "--bind", "PatternVAE.latent_size = 16", "--bind", "train.max_steps = 20"]) == 0
    assert main(["export", "--run", str(runs / "d16"), "--streaming"]) == 0
    ts = runs / "d16" / "export" / "d16.ts"

    device = build_drums_device(tmp_path / "device", ts.name, read_metadata(ts))
    assert validate_device(device) == []
    boxes = [b["box"] for b in read_amxd(device).patcher["patcher"]["boxes"]]
    dials = [b for b in boxes if b["maxclass"] == "live.dial" and b.get("varname", "").startswith("Latent ")]
    assert len(dials) == 16
    rows = {b["presentation_rect"][1] for b in dials}
    assert len(rows) == 2  # two rows of eight, so the style menu still fits in 169 px
    shown = [b for b in boxes if b.get("presentation")]
    assert max(b["presentation_rect"][1] + b["presentation_rect"][3] for b in shown) <= 169

    model = DrumModel(ts)
    assert model.latent_size == 16
    output = ListOutput()
    player = DrumPlayer(model, output, bpm=600.0, style=0, z=[0.0] * 16)
    before = player.pattern.copy()
    values = [127 if i % 2 else 0 for i in range(8)]
    for i, value in enumerate(values):  # z9 .. z16
        player.handle_message(mido.Message("control_change", control=CC_Z_MORE_FIRST + i, value=value))
    player.handle_message(mido.Message("control_change", control=CC_Z_FIRST, value=127))  # z1
    want = [cc_to_latent(127)] + [0.0] * 7 + [cc_to_latent(v) for v in values]
    assert player.controls["z"] == want
    player.play(bars=1)  # the pattern is decoded again after the first step
    assert any(m.type == "note_on" for m in output.sent)
    np.testing.assert_array_equal(player.pattern, model.pattern(want, 0))
    assert not np.array_equal(player.pattern, before)
