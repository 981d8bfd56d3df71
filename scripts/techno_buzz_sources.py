"""Where the frame-rate buzz of sampled techno loops comes from (docs/techno.md, issue #18).

    .venv/bin/python scripts/techno_buzz_sources.py --run runs/techno_prior_demo [--split test]

Two measurements on the held-out loops of ``--split`` (a techno_prior run and the stage-1 run it names), each the
share of power within 2 Hz of the harmonics of the stage-1 frame rate, as ``latentlive evaluate`` reports it
(``eval/quality/frame_share/frame``):

* read back: each loop's stage-1 posterior mean at its own frames, and resampled to K frames a bar and read
  back at its frames (as techno_prior sees a loop), decoded by stage 1, beside the corpus's own share;
* frame temperature: new loops sampled through both stages at several ``frame_temperature`` values, with
  their Fréchet log-mel distance to the held-out loops (the run's ``prior_sample_quality``).
"""

import argparse
from pathlib import Path

import torch

from latentlive.core.runs import load_checkpoint
from latentlive.models.trajectory_vae import read_at_phase
from latentlive.training.config import parse_gin
from latentlive.training.sample_quality import frame_rate_share
from latentlive.training.tasks.techno_prior import (
    TechnoPriorTask,
    frame_phases,
    loop_positions,
    resample_frames,
)

FRAMES_PER_BAR = (32, 64, 128, 256)
TEMPERATURES = (0.5, 1.0, 1.5, 2.0, 3.0)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a techno_prior run")
    parser.add_argument("--split", default="test", choices=["validation", "test"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint = load_checkpoint(args.run / "checkpoints" / "last.pt")
    parse_gin([args.run / "config.gin"])
    task = TechnoPriorTask()
    held_out = task.load_data(None, 0, log=lambda _: None).side(args.split).take(slice(None), "cpu")
    audio, lengths = held_out["audio"], [int(n) for n in held_out["loop_samples"]]
    stage1, rate = task.stage1, task.sample_rate
    frame_rate = rate / stage1.ratio

    def share(clips: list[torch.Tensor]) -> float:
        return frame_rate_share([c.numpy() for c in clips], rate, frame_rate)

    mean = torch.cat([stage1.encode(part[:, None])[0] for part in audio.split(16)])
    print(f"{len(audio)} held-out loops ({args.split}), frame rate {frame_rate:g} Hz")
    print(f"corpus: {share([a[:n] for a, n in zip(audio, lengths, strict=True)]):.3f}")
    own = [
        stage1.decode(z[None, :, : -(-n // stage1.ratio)])[0, 0, :n]
        for z, n in zip(mean, lengths, strict=True)
    ]
    print(f"posterior means at their own frames: {share(own):.3f}")
    for per_bar in FRAMES_PER_BAR:
        trajectory = resample_frames(
            mean, loop_positions(held_out["loop_samples"], stage1.ratio, per_bar * task.bars)
        )
        read = [
            stage1.decode(read_at_phase(t[None], frame_phases(t[None], stage1.ratio, n)))[0, 0, :n]
            for t, n in zip(trajectory, lengths, strict=True)
        ]
        print(f"resampled to {per_bar} frames a bar and read back: {share(read):.3f}")

    model, _ = task.build_model()
    model.load_state_dict(checkpoint["model_state"])
    model.eval()
    for temperature in TEMPERATURES:
        task.frame_temperature = temperature
        quality = task.prior_sample_quality(model, audio, held_out["loop_samples"])
        print(
            f"new loops at frame_temperature {temperature:g}: share {quality['eval/quality/frame_share/frame']:.3f}"
            f" (corpus {quality['eval/quality/frame_share/frame_corpus']:.3f}), Fréchet log-mel "
            f"{quality['eval/quality/frechet_log_mel']:.1f}"
        )


if __name__ == "__main__":
    main()
