"""Every model of the suite, in one place: what trains it, exports it, builds its device, renders and
benchmarks it, and which demo run makes it.

A model's name is its ``train.task`` in the gin files, the name of its ``.ts`` (``drums.ts``) and the
``model`` of its export metadata. The registry is data, like a package's entry points: it imports nothing
of the project, and its references (``"module:attribute"``) are imported when used (:func:`load`), so the
layers below the command line (training, export, devices) read it without depending on what is above
them, and ``latentlive --help`` stays quick. ``tests/test_registry.py`` checks that every reference
resolves, into the layer its role belongs to.

Adding a model: one :class:`ModelSpec` here plus its own modules (task, export builder, device, gin files).
"""

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One model: the references are ``"module:attribute"`` paths (see :func:`load`)."""

    name: str
    summary: str
    task: str  # the training task class (latentlive.training.tasks)
    export: str | None = None  # (checkpoint, streaming) -> (nn~ module, metadata); None: trained only
    device: str | None = None  # builds the .amxd (latentlive.m4l_devices)
    device_name: str | None = None  # the device's file name, NAME.amxd
    # (device name, builder) of devices written beside it from the same metadata, by the same builder
    # signature: LatentBandPart, the receiver that plays one band part on another track
    companions: tuple[tuple[str, str], ...] = ()
    # `latentlive render SUBCOMMAND` and `latentlive play NAME`: modules with ``render_command(args)`` /
    # ``play_command(args)``, the options they read (``OPTIONS``) and the ranges of those (``RANGES``)
    render: tuple[str, str] | None = None  # (subcommand, module)
    play: str | None = None
    bench: str | None = None  # `latentlive bench` module (latentlive.bench)
    demo: bool = True  # `make demo` trains it with gin/<name>_demo.gin (its step count lives there)
    reported: bool = False  # `make report` trains its demo config at 3 seeds for docs/quality.md
    needs: tuple[tuple[str, str], ...] = ()  # (gin binding, model): runs it trains on, made first

    @property
    def gin(self) -> str:
        """The full-size config."""
        return f"gin/{self.name}.gin"

    @property
    def demo_gin(self) -> str:
        return f"gin/{self.name}_demo.gin"

    @property
    def tiny_gin(self) -> str:
        """The sizes the tests train at."""
        return f"gin/{self.name}_tiny.gin"

    @property
    def model_file(self) -> str:
        """The exported model's file name, beside its device."""
        return f"{self.name}.ts"


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="drums",
        reported=True,
        summary="pattern VAE over 9-instrument drum grids: a latent drum sequencer emitting MIDI",
        task="latentlive.training.tasks.drums:DrumsTask",
        export="latentlive.export.drums:build_drums_export",
        device="latentlive.m4l_devices.drums:build_drums_device",
        device_name="LatentDrums",
        render=("drums", "latentlive.live.render"),
        play="latentlive.live.drum_player",
        bench="latentlive.bench.drums",
    ),
    ModelSpec(
        name="drumsynth",
        reported=True,
        summary="class-conditional VAE over NSGT magnitudes of one-shots: the drum kit instrument",
        task="latentlive.training.tasks.drumsynth:DrumSynthTask",
        export="latentlive.export.drumsynth:build_drumsynth_export",
        device="latentlive.m4l_devices.drumsynth:build_kit_device",
        device_name="LatentKit",
        render=("loop", "latentlive.live.render_loop"),
        bench="latentlive.bench.drumsynth",
    ),
    ModelSpec(
        name="techno",
        summary="streaming waveform VAE of techno loops: an audio effect through its latent space",
        task="latentlive.training.tasks.techno:TechnoTask",
        export="latentlive.export.techno:build_techno_export",
        device="latentlive.m4l_devices.loops_fx:build_loops_fx_device",
        device_name="LatentLoopsFX",
        bench="latentlive.bench.techno",
    ),
    ModelSpec(
        name="techno_prior",
        summary="VAE over the techno model's latent trajectories: loops played from macro knobs",
        task="latentlive.training.tasks.techno_prior:TechnoPriorTask",
        export="latentlive.export.techno:build_techno_prior_export",
        device="latentlive.m4l_devices.loops:build_loops_device",
        device_name="LatentLoops",
        render=("techno", "latentlive.render_techno"),
        needs=(("TechnoPriorTask.stage1_run", "techno"),),
    ),
    ModelSpec(
        name="grain",
        summary="VAE over short waveform grains: the granular instrument",
        task="latentlive.training.tasks.grain:GrainTask",
        export="latentlive.export.grain:build_grain_export",
        device="latentlive.m4l_devices.grains:build_grains_device",
        device_name="LatentGrains",
        render=("grain", "latentlive.live.render_grain"),
        bench="latentlive.bench.grain",
    ),
    ModelSpec(
        name="grain_prior",
        summary="VAE over the grain model's latent paths (trained and evaluated; not exported yet)",
        task="latentlive.training.tasks.grain_prior:GrainPriorTask",
        demo=False,
        needs=(("GrainPriorTask.grain_run", "grain"),),
    ),
    ModelSpec(
        name="band",
        reported=True,
        summary="RMVAE over the parts of a measure: the band player that answers what you play",
        task="latentlive.training.tasks.band:BandTask",
        export="latentlive.export.band:build_band_export",
        device="latentlive.m4l_devices.band:build_band_device",
        device_name="LatentBand",
        companions=(("LatentBandPart", "latentlive.m4l_devices.band_part:build_band_part_device"),),
        render=("band", "latentlive.live.render_band"),
        play="latentlive.live.band_player",
        bench="latentlive.bench.band",
    ),
)


def names() -> list[str]:
    return [spec.name for spec in MODELS]


def find(name: str) -> ModelSpec | None:
    """The model called ``name``, or None."""
    return next((spec for spec in MODELS if spec.name == name), None)


def device_name(name: str) -> str:
    """The device file name (``NAME.amxd``) of the model ``name``."""
    spec = find(name)
    if spec is None or spec.device_name is None:
        raise KeyError(f"model {name!r} has no device")
    return spec.device_name


def load(reference: str) -> Any:
    """Import ``"package.module:attribute"`` (or a whole module, without ``:``) and return it."""
    module, _, attribute = reference.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded
