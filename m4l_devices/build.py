"""``latentlive devices --run runs/NAME``: the device of an exported run, checked, with its model beside it;
``--pretrained``: those of every model shipped in ``pretrained/``, each in a folder named after it.

A device names its model by file name only (``nn~ drums.ts ...``) and Max looks for that name beside the
device first, so the model is copied into the device's folder as ``<model>.ts`` (``drums.ts``,
``techno_prior.ts``: the model name in the metadata): one folder of ``.amxd`` + ``.ts`` that works
wherever it is copied (docs/devices_and_files.md). A model's companion devices (LatentBandPart beside
LatentBand) go into the same folder; they load no model.

``--out`` is a folder (made if missing) or an ``.amxd`` name. An existing device there is replaced when it is
one that latentlive wrote for the same model, any other file only with ``force``; a folder never.
"""

import filecmp
import shutil
from pathlib import Path

from latentlive import registry
from latentlive.core.errors import UserError
from latentlive.core.files import atomic_write, check_output_file, check_writable_folder
from latentlive.core.runs import RunFolder
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.amxd import read_amxd
from latentlive.m4l_devices.common import device_path
from latentlive.m4l_devices.validate import validate_device


def build_devices_for_run(
    run_path: Path,
    model: Path | None = None,
    out: Path | None = None,
    preview: bool = False,
    force: bool = False,
) -> list[Path]:
    """Write the run's device into ``out`` (default ``RUN/export``), its model and its companion devices
    (the registry's ``companions``: LatentBandPart for band) beside it; return the files written.

    ``model`` (default: the run's exported ``.ts``) is copied as ``<model>.ts`` into the device's folder
    (``out``, or its parent when ``out`` names an ``.amxd``). Bad metadata, a model of another kind than the
    run, an ``out`` that is a file, or another file under either name (without ``force``) raises UserError
    before anything is written.
    """
    run = RunFolder(run_path)
    ts = model or run.exported_model
    if not ts.is_file():
        raise UserError(f"{ts}: no exported model; run `latentlive export --run {run_path}` first")
    metadata = read_metadata(ts)
    spec = registry.find(str(metadata.get("model", "")))
    if spec is None or spec.device is None or spec.device_name is None:
        raise UserError(f"{ts}: no device for model {metadata.get('model')!r}")
    check_model_kind(run, ts, metadata["model"])
    out = out or run.export_dir
    folder = check_device_out(out)
    beside = folder / f"{metadata['model']}.ts"
    check_output_file(beside, force=True)  # whatever the file there, never a folder
    try:
        copy = needs_copy(ts, beside)
    except UserError:
        if not force:
            raise
        copy = True
    builds = [(spec.device, device_path(out, spec.device_name))]
    builds += [(builder, folder / f"{name}.amxd") for name, builder in spec.companions]
    for _, target in builds:
        check_output_file(target, force, lambda p: is_device_for(p, beside.name), example="Device.amxd")
        if preview:  # a picture of our device: never a folder
            check_output_file(target.with_suffix(".png"), force=True)
    devices = []
    for builder, target in builds:
        device = registry.load(builder)(target, ts, metadata, beside.name)
        problems = validate_device(device)
        if problems:
            raise RuntimeError(f"{device}: generated device is invalid: {'; '.join(problems)}")
        devices.append(device)
    if copy:
        atomic_write(beside, lambda tmp: shutil.copyfile(ts, tmp))
    written = [devices[0], beside, *devices[1:]]
    if preview:
        from latentlive.m4l_devices.preview import draw_presentation  # matplotlib: only when asked

        written += [draw_presentation(device, device.with_suffix(".png")) for device in devices]
    return written


def build_pretrained_devices(root: Path, out: Path, preview: bool = False, force: bool = False) -> list[Path]:
    """:func:`build_devices_for_run` for every exported run under ``root`` (``pretrained/``: one run per model,
    named after it), into ``out/<name>``; the files written. A ``root`` without one raises UserError."""
    runs = sorted(p for p in root.iterdir() if RunFolder(p).exported_model.is_file()) if root.is_dir() else []
    if not runs:
        raise UserError(
            f"{root}: no pretrained model in it; see pretrained/README.md for how they are trained and exported"
        )
    written = []
    for run in runs:
        written += build_devices_for_run(run, out=out / run.name, preview=preview, force=force)
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


def check_model_kind(run: RunFolder, ts: Path, kind: str) -> None:
    """Refuse a model of another kind than the run's: its device would carry the wrong model's name."""
    task = run.task
    if task is not None and task != kind:
        raise UserError(
            f"{ts}: a {kind!r} model, but {run.root} trained {task!r}; pass that run's export as --model "
            "(or the --run this model came from)"
        )


def check_device_out(out: Path) -> Path:
    """The folder the device and its model go into; refuses an ``out`` that is a file (not an ``.amxd``),
    an ``.amxd`` name that is a folder, and a folder that cannot be written."""
    if out.suffix == ".amxd":
        if out.is_dir():
            raise UserError(f"{out}: is a folder; --out takes a folder or a .amxd file name")
        folder = out.parent
    else:
        if out.exists() and not out.is_dir():
            raise UserError(f"{out}: is a file; --out takes a folder (made if missing) or a .amxd file name")
        folder = out
    check_writable_folder(folder)
    return folder


def is_device_for(path: Path, model_file: str) -> bool:
    """Whether ``path`` is an ``.amxd`` that names ``model_file`` (a device latentlive wrote for that model)."""
    try:
        device = read_amxd(path)
    except (UserError, KeyError):  # KeyError: chunks without an 'ampf' one
        return False
    return model_file in str(device.patcher)
