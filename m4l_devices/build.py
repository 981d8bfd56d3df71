"""``latentlive devices --run runs/NAME``: the device of an exported run, checked, with its model beside it.

A device names its model by file name only (``nn~ drums.ts ...``) and Max looks for that name beside the
device first, so the model is copied into the device's folder as ``<model>.ts`` (``drums.ts``,
``techno_prior.ts``: the model name in the metadata): one folder of ``.amxd`` + ``.ts`` that works
wherever it is copied (docs/devices_and_files.md).
"""

import filecmp
import shutil
from pathlib import Path

from export.metadata import read_metadata
from latentlive.errors import UserError
from latentlive.files import atomic_write
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
    """Write the run's device into ``out`` (default ``RUN/export``) and its model beside it; return the
    files written.

    ``model`` (default: the run's exported ``.ts``) is copied as ``<model>.ts`` into the device's folder
    (``out``, or its parent when ``out`` names an ``.amxd``). Bad metadata, or another file under that
    name, raises UserError before anything is written.
    """
    run = RunFolder(run_path)
    ts = model or run.exported_model
    if not ts.is_file():
        raise UserError(f"{ts}: no exported model; run `latentlive export --run {run_path}` first")
    metadata = read_metadata(ts)
    build = BUILDERS.get(metadata.get("model", ""))
    if build is None:
        raise UserError(f"{ts}: no device for model {metadata.get('model')!r}")
    out = out or run.export_dir
    beside = (out.parent if out.suffix == ".amxd" else out) / f"{metadata['model']}.ts"
    copy = needs_copy(ts, beside)
    device = build(out, ts, metadata, beside.name)
    problems = validate_device(device)
    if problems:
        raise RuntimeError(f"{device}: generated device is invalid: {'; '.join(problems)}")
    if copy:
        atomic_write(beside, lambda tmp: shutil.copyfile(ts, tmp))
    written = [device, beside]
    if preview:
        written.append(draw_presentation(device, device.with_suffix(".png")))
    return written


def needs_copy(model: Path, beside: Path) -> bool:
    """Whether ``model`` must be copied to ``beside``: False when ``beside`` already holds the same bytes.

    A different file there is replaced only when it is a latentlive export (an earlier copy); anything
    else is the user's, and raises UserError rather than being overwritten.
    """
    if not beside.exists():
        return True
    if beside.is_file() and (beside.samefile(model) or filecmp.cmp(model, beside, shallow=False)):
        return False
    try:
        read_metadata(beside)
    except UserError:
        raise UserError(
            f"{beside}: exists and is not a latentlive export; move it away or pass another --out"
        ) from None
    return True
