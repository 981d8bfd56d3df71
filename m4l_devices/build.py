"""``latentlive devices --run runs/NAME``: the devices of an exported run, checked after writing."""

from pathlib import Path

from export.metadata import read_metadata
from latentlive.errors import UserError
from latentlive.runs import RunFolder
from m4l_devices.band import build_band_device
from m4l_devices.drums import build_drums_device
from m4l_devices.drumsynth import build_kit_device
from m4l_devices.grains import build_grains_device
from m4l_devices.loops import build_loops_device
from m4l_devices.loops_fx import build_loops_fx_device
from m4l_devices.preview import draw_presentation
from m4l_devices.validate import validate_device

BUILDERS = {
    "drums": build_drums_device,
    "drumsynth": build_kit_device,
    "techno": build_loops_fx_device,
    "techno_prior": build_loops_device,
    "grain": build_grains_device,
    "band": build_band_device,
}


def build_devices_for_run(
    run_path: Path, model: Path | None = None, out: Path | None = None, preview: bool = False
) -> list[Path]:
    """Write the run's device(s) into ``out`` (default ``RUN/export``); return the files written.

    The device loads ``model`` (default: the run's exported ``.ts``) by its absolute path.
    """
    run = RunFolder(run_path)
    ts = (model or run.exported_model).resolve()
    if not ts.is_file():
        raise UserError(f"{ts}: no exported model; run `latentlive export --run {run_path}` first")
    metadata = read_metadata(ts)
    build = BUILDERS.get(metadata.get("model", ""))
    if build is None:
        raise UserError(f"{ts}: no device for model {metadata.get('model')!r}")
    device = build(out or run.export_dir, str(ts), metadata)
    problems = validate_device(device)
    if problems:
        raise RuntimeError(f"{device}: generated device is invalid: {'; '.join(problems)}")
    written = [device]
    if preview:
        written.append(draw_presentation(device, device.with_suffix(".png")))
    return written
