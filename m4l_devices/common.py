"""Pieces every device of the suite shares: Max atom quoting, section headers, model loading and status.

A device names its model by file name only (``nn~ drums.ts decode ...``): Max finds it beside the
device or on its search path, so a folder of ``.amxd`` + ``.ts`` works on any machine
(docs/devices_and_files.md). The model box of a device: dropping a ``.ts`` on the ``live.drop``
sends ``load <path>`` to nn~ (the dropped path is stored with the Live set), and a status line names
the loaded model or says that the file is missing.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar

from latentlive.core.errors import UserError
from latentlive.m4l_devices.amxd import write_amxd
from latentlive.m4l_devices.patcher import Box, Param, Patcher, Rect

RATE_RESEND_MS = 2000  # the host rate goes to nn~ again this often (a no-op for a model that has it)


def quote_atom(atom: str) -> str:
    """A Max atom for ``atom``: quoted when it holds spaces or Max's separators."""
    return f'"{atom}"' if any(c in atom for c in " ,;$\\{}") else atom


def model_file_name(model_path: str | Path) -> str:
    """The bare file name a device gives nn~ for ``model_path``; UserError when it cannot be one atom.

    Never a folder: an absolute path would tie the device to the machine that built it.
    """
    name = Path(model_path).name
    if '"' in name:
        raise UserError(
            f"{model_path}: a model file name with a double quote cannot be given to nn~; rename it"
        )
    return name


def metadata_where(model_path: str, metadata: dict, model: str | None, what: str) -> tuple[str, str]:
    """The ``where`` and ``fix`` of a device's one-line metadata errors (the fix: re-export ``what``);
    UserError when ``metadata`` is not of ``model`` (None: not checked)."""
    where = f"{model_path}: metadata"
    fix = f"re-export the {what} with `latentlive export`"
    if model is not None and metadata.get("model") != model:
        raise UserError(f"{where} is for model {metadata.get('model')!r}, not {model!r}; {fix}")
    return where, fix


@contextmanager
def reading_metadata(where: str, fix: str) -> Iterator[None]:
    """Turns a missing or mangled metadata field (KeyError, TypeError, ValueError) read in the block into a
    one-line UserError."""
    try:
        yield
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{where} lacks or mangles {err}; {fix}") from None


def host_rates_of(metadata: dict) -> tuple[int, ...] | None:
    """The host rates a model supports, from its metadata; None for a model that does not run at a rate
    of its own (drums, band: any rate)."""
    if not metadata.get("sample_rate"):
        return None
    return tuple(int(r) for r in metadata.get("host_sample_rates", [44100, 48000]))


def section_header(p: Patcher, text: str, x: float, w: float) -> None:
    """A section title at the top of the presentation view."""
    p.comment(text, (x, 2, w, 18), presentation_rect=(x, 2, w, 18), maxclass="live.comment")


def model_loading(
    p: Patcher,
    nns: Sequence[Box],
    model_file: str,
    model_kind: str,
    drop_rect: Rect,
    status_rect: Rect,
    resend: list[Box] | tuple[Box, ...] = (),
    at: tuple[float, float] = (1060.0, 40.0),
    host_rates: Sequence[int] | None = None,
) -> None:
    """The model drop box, the stored file name, the existence check, the host rate and the status line.

    ``nns``: every nn~ box of the model (each gets the ``load`` and the rate). ``host_rates``: the rates the
    model supports (None: any; it keeps time in steps); another rate turns the status line red
    (:func:`host_rate_sender`).

    ``model_file`` is the bare file name the device starts with: ``absolutepath`` looks it up the way nn~
    does (the device's folder, then Max's search path) and answers ``notfound`` when it is not there,
    which turns the status line red; found, its absolute path on this machine (never stored) goes to nn~
    as ``load <path>``. ``model_kind`` names the model in the drop legend ("Drop drums .ts");
    ``drop_rect`` and ``status_rect`` are presentation rects; ``resend`` boxes are banged after a load (a
    freshly loaded model starts from its default attributes); ``at`` is the patching origin of the boxes.
    """
    x, y = at
    drop = p.ui(
        "live.drop",
        (x, y, 120, 40),
        param=Param("Model File", "Model", kind="file", visibility="stored"),
        presentation_rect=drop_rect,
        legend=f"Drop {model_kind} .ts",
        decodemode=1,
    )
    status = p.comment(
        f"Model: {model_file}", (x, y + 360, 200, 36), presentation_rect=status_rect, fontsize=9.0
    )
    on_drop = p.obj("t l l", (x, y + 60))
    store = p.obj("prepend set", (x + 60, y + 100))
    path = p.message(quote_atom(model_file), (x, y + 140), width=220)
    ready = p.obj("live.thisdevice", (x + 160, y + 60))
    p.connect(drop, 0, on_drop, 0)
    p.connect(on_drop, 1, store, 0)
    p.connect(store, 0, path, 0)
    p.connect(ready, 0, path, 0)

    exists = p.obj("absolutepath", (x, y + 180))
    found = p.obj("route notfound", (x, y + 220))
    p.connect(on_drop, 0, exists, 0)
    p.connect(path, 0, exists, 0)
    p.connect(exists, 0, found, 0)

    missing = p.message(
        f"textcolor 1. 0.45 0.35 1., set Model missing: drop a {model_kind} .ts above", (x, y + 280)
    )
    p.connect(found, 0, missing, 0)
    p.connect(missing, 0, status, 0)

    loaded = p.obj("t b l l", (x + 160, y + 260))
    p.connect(found, 1, loaded, 0)
    name = p.obj("strippath", (x + 260, y + 300))
    label = p.obj("prepend set Model:", (x + 260, y + 330))
    p.connect(loaded, 2, name, 0)
    p.connect(name, 0, label, 0)
    p.connect(label, 0, status, 0)
    load = p.obj("prepend load", (x + 160, y + 300))
    p.connect(loaded, 1, load, 0)
    for nn in nns:
        p.connect(load, 0, nn, 0)
    normal = p.message("textcolor 0.82 0.82 0.82 1.", (x + 80, y + 330))
    p.connect(loaded, 0, normal, 0)
    p.connect(normal, 0, status, 0)
    for box in resend:
        p.connect(loaded, 0, box, 0)
    host_rate_sender(p, nns, host_rates, (ready, loaded), status, (x + 420, y))


def host_rate_sender(
    p: Patcher,
    nns: Sequence[Box],
    host_rates: Sequence[int] | None,
    triggers: Sequence[Box],
    status: Box,
    at: tuple[float, float],
) -> None:
    """Live's sample rate to every nn~ as ``set host_rate RATE`` (docs/host_rate.md: nn~ 1.6.0 never calls
    ``set_sample_rate`` on a first load). ``dspstate~`` reports the rate when banged: by each of
    ``triggers`` (the device ready, a model loaded), by a slow ``metro`` (a load that was still under way
    when the device sent it, a rate changed while the audio was off), and on its own when the audio
    restarts. The models ignore a rate they already have. A rate outside ``host_rates`` writes "Rate ... Hz
    not supported" on the ``status`` line (the model plays silence then)."""
    x, y = at
    resend = p.obj(f"metro {RATE_RESEND_MS}", (x, y + 30))
    start = p.message("1", (x, y))
    dsp = p.obj("dspstate~", (x, y + 70))
    as_int = p.obj("t i i", (x, y + 110))
    message = p.obj("prepend set host_rate", (x, y + 150))
    p.connect(triggers[0], 0, start, 0)
    p.connect(start, 0, resend, 0)
    p.connect(resend, 0, dsp, 0)
    for trigger in triggers:
        p.connect(trigger, 0, dsp, 0)
    p.connect(dsp, 1, as_int, 0)
    p.connect(as_int, 1, message, 0)
    for nn in nns:
        p.connect(message, 0, nn, 0)
    if host_rates is not None:
        check = p.obj(f"sel {' '.join(str(r) for r in host_rates)}", (x + 160, y + 150))
        supported = "/".join(f"{r / 1000:g}" for r in host_rates)
        refused = p.message(
            f"textcolor 1. 0.45 0.35 1., set Rate $1 Hz not supported: use {supported} kHz",
            (x + 160, y + 190),
        )
        p.connect(as_int, 0, check, 0)
        p.connect(check, len(host_rates), refused, 0)
        p.connect(refused, 0, status, 0)


def pad_links(
    p: Patcher,
    pad: Box,
    dials: Sequence[Box],
    rows: tuple[float, float, float, float],
    back: Box | None = None,
) -> None:
    """An XY pad in hundredths and dials 1 and 2 (x, y): the pad moves the dials, and the dials (and
    ``back``, a pair recalled elsewhere) move the pad with "set", which does not output. ``rows``: the
    patching y of the "/ 100.", "* 100.", "pak" and "prepend set" boxes."""
    scale_y, hundred_y, pak_y, set_y = rows
    for outlet, dial in ((0, dials[0]), (1, dials[1])):
        scale = p.obj("/ 100.", (20 + outlet * 70, scale_y))
        p.connect(pad, outlet, scale, 0)
        p.connect(scale, 0, dial, 0)
    pak = p.obj("pak 0. 0.", (20, pak_y))
    for inlet, dial in ((0, dials[0]), (1, dials[1])):
        hundred = p.obj("* 100.", (20 + inlet * 70, hundred_y))
        p.connect(dial, 0, hundred, 0)
        if back is not None:
            p.connect(back, inlet, hundred, 0)
        p.connect(hundred, 0, pak, inlet)
    set_pad = p.obj("prepend set", (20, set_y))
    p.connect(pak, 0, set_pad, 0)
    p.connect(set_pad, 0, pad, 0)


def device_path(out_path: str | Path, device_name: str) -> Path:
    """``out_path`` itself when it names an ``.amxd``, else ``out_path/<device_name>.amxd``."""
    out = Path(out_path)
    return out if out.suffix == ".amxd" else out / f"{device_name}.amxd"


class DeviceSpec(Protocol):
    """What a device builder needs of its spec: the check of a model's metadata."""

    @classmethod
    def from_metadata(
        cls, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> Self: ...


SpecT = TypeVar("SpecT", bound=DeviceSpec)


class DeviceBuilder(Protocol):
    """``build_*_device(out_path, model_path, metadata, model_file=None)``: write a model's device, return its
    path (what the registry names as a model's ``device``)."""

    def __call__(
        self, out_path: str | Path, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> Path: ...


def device_builder(
    spec_type: type[SpecT], patcher: Callable[[SpecT], dict[str, Any]], device_name: str, device_type: str
) -> DeviceBuilder:
    """The builder of the device ``<device_name>.amxd`` (``device_type``): it checks a model's metadata with
    ``spec_type.from_metadata`` and writes the document ``patcher`` draws of the spec."""

    def build(
        out_path: str | Path, model_path: str, metadata: dict[str, Any], model_file: str | None = None
    ) -> Path:
        spec = spec_type.from_metadata(str(model_path), metadata, model_file)
        return write_amxd(device_path(out_path, device_name), patcher(spec), device_type)

    build.__doc__ = f"""Write ``{device_name}.amxd`` and return its path.

    ``out_path`` is the folder to write into, or the ``.amxd`` path itself. ``model_path`` is the ``.ts``
    nn~ loads (the device names it by file name only, so it goes beside the ``.amxd``; the user can drop
    another), under the name ``model_file`` when given; ``metadata`` is
    ``export.metadata.read_metadata(model_path)``. Raises UserError when the metadata is unusable.
    """
    return build
