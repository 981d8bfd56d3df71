"""The host rate as nn~ 1.6.0 delivers it (issue 13): never through ``set_sample_rate`` on a first load, a
garbage rate on ``reload``, the devices' ``set host_rate RATE``; no setter raises into nn~, and the contract
checks of all this fail on modules that break it."""

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from latentlive.export.contract import (
    BAD_SETTER_VALUES,
    check_setters,
    check_setters_after_playing,
    check_silent_until_told,
    check_warmed_paths,
)
from latentlive.export.host import (
    UNINITIALISED_RATE,
    HostError,
    NNHost,
    deliver_host_rate,
    load_ts,
    reload,
    set_attribute,
)
from latentlive.export.host_rate import HostRateModule
from latentlive.export.metadata import read_metadata

KINDS = ("drums", "drumsynth", "techno", "techno_prior", "grain", "band")


class Gain(HostRateModule):
    """A module that needs the rate: ``forward`` is its input times the ``gain`` attribute.

    ``careless``: plays before it is told the rate and lets a NaN gain through; ``touchy``: its gain setter
    raises for a negative gain. Both are what the contract must catch."""

    def __init__(self, careless: bool = False, touchy: bool = False) -> None:
        super().__init__((44100, 48000))
        self.careless, self.touchy = careless, touchy
        self.register_attribute("gain", 1.0)
        self.register_attribute("latency", 0)
        self.register_method("forward", 1, 1, 1, 1, ["(signal) in"], ["(signal) out"])

    def forward(self, x: Tensor) -> Tensor:
        if self.rate == 0 and not self.careless:
            return self.silence(x, 1, 1, 1)
        gain = self.gain[0]
        if not self.careless and not (gain == gain and abs(gain) < 1e6):
            gain = 1.0
        return x * gain

    @torch.jit.export
    def set_gain(self, gain0: float) -> int:
        if self.touchy and gain0 < 0:
            raise ValueError("negative gain")
        self.gain = (gain0,)
        return 0

    def use_host_rate(self, rate: int) -> None:
        pass

    def warm_up(self) -> None:
        pass

    @torch.jit.export
    def reset(self) -> None:
        pass


@torch.jit.interface
class ScalePath(nn.Module):
    def scale(self, x: Tensor) -> Tensor:
        pass


class Scale(nn.Module):
    @torch.jit.export
    def scale(self, x: Tensor) -> Tensor:
        return 0.5 * x


class Scaled(HostRateModule):
    """A heavy path in a concrete submodule: its call is inlined into ``forward``, out of the warm-up's reach."""

    def __init__(self, path: nn.Module | None = None) -> None:
        super().__init__((44100,))
        self.path = Scale() if path is None else path
        self.register_method("forward", 1, 1, 1, 1, ["(signal) in"], ["(signal) out"])

    def forward(self, x: Tensor) -> Tensor:
        return self.path.scale(x)

    def use_host_rate(self, rate: int) -> None:
        pass

    def warm_up(self) -> None:
        pass


class TypedScaled(Scaled):
    """The same path through a module interface: its own executor, which a warm-up can compile."""

    path: ScalePath

    def __init__(self) -> None:
        super().__init__(torch.jit.script(Scale()))


class Echo(HostRateModule):
    """Keeps the last buffer it heard (``forward`` replaces its ``last`` tensor) and forgets it on a new rate.

    ``in_place``: its reset zeroes that tensor in place, which fails in nn~ once ``forward`` has replaced it
    under inference mode (the grain follower's history did so until the contract checked it)."""

    def __init__(self, in_place: bool = False) -> None:
        super().__init__((44100, 48000))
        self.in_place = in_place
        self.register_buffer("last", torch.zeros(1, 1, 1))
        self.register_method("forward", 1, 1, 1, 1, ["(signal) in"], ["(signal) out"])

    def forward(self, x: Tensor) -> Tensor:
        heard = self.last if self.last.shape == x.shape else torch.zeros_like(x)
        self.last = x.clone()
        return heard

    def use_host_rate(self, rate: int) -> None:
        self.reset()

    def warm_up(self) -> None:
        pass

    @torch.jit.export
    def reset(self) -> None:
        if self.in_place:
            self.last.zero_()
        else:
            self.last = torch.zeros_like(self.last)


def saved(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.script(module).save(str(path))
    return path


def test_set_attribute_parses_by_the_declared_types_and_raises_where_nn_would(tmp_path):
    module = load_ts(saved(Gain(touchy=True), tmp_path / "gain.ts"))
    set_attribute(module, "gain", ["0.25"])
    assert module.get_gain() == (0.25,)
    with pytest.raises(HostError, match="not found"):
        set_attribute(module, "volume", ["1"])
    with pytest.raises(HostError, match="bad arguments"):
        set_attribute(module, "host_rate", ["fast"])
    with pytest.raises(HostError, match="raised: .*negative gain"):
        set_attribute(module, "gain", ["-1"])


def test_a_module_plays_silence_until_its_device_sets_a_supported_rate(tmp_path):
    module = load_ts(saved(Gain(), tmp_path / "gain.ts"))
    x = torch.ones(1, 1, 512)
    out = NNHost(module, "forward", 512, host_rate=None).process(x)  # nn~ 1.6.0's first load
    assert torch.count_nonzero(out) == 0 and module.get_host_rate() == (0,)
    reload(module)  # the uninitialised int of nn~'s reload: ignored, nothing raised
    for bad in (0, -1, 22050, 96000):
        deliver_host_rate(module, bad)
        assert module.refused_rate == bad and module.get_host_rate() == (0,)
    deliver_host_rate(module, 48000)
    assert module.warmed_up and module.get_host_rate() == (48000,) and int(module.sr) == 48000
    assert torch.equal(module(x), x)
    reload(module)
    assert module.get_host_rate() == (48000,) and module.refused_rate == UNINITIALISED_RATE


def test_the_contract_checks_fail_on_modules_that_break_them(tmp_path):
    careless = tmp_path / "careless.ts"
    saved(Gain(careless=True), careless)
    assert check_silent_until_told(load_ts(careless), "forward") == [
        "forward: plays before it was told the host rate"
    ]
    assert "forward after set gain nan: non-finite output" in check_setters(careless, "forward", 44100)
    touchy = saved(Gain(touchy=True), tmp_path / "touchy.ts")
    assert any(
        p.startswith("set gain -1: setter for gain raised") for p in check_setters(touchy, "forward", 44100)
    )
    inlined = load_ts(saved(Scaled(), tmp_path / "inlined.ts"))
    assert check_warmed_paths(inlined, "forward") == [
        "forward: calls __torch__.test_host_rate.Scale.scale inlined, out of the warm-up's reach"
    ]
    assert check_warmed_paths(load_ts(saved(TypedScaled(), tmp_path / "typed.ts")), "forward") == []
    good = saved(Gain(), tmp_path / "good.ts")
    assert (
        check_silent_until_told(load_ts(good), "forward") == []
        and check_setters(good, "forward", 44100) == []
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_export_survives_what_nn_can_pass_and_warms_up_on_its_first_rate(kind, request):
    path = request.getfixturevalue(f"{kind}_ts")
    module = load_ts(path)
    assert not module.warmed_up and module.get_host_rate() == (0,)
    reload(module)
    for value in BAD_SETTER_VALUES[:5]:  # the integers
        set_attribute(module, "host_rate", [value])  # raises HostError where nn~ would throw
    metadata = read_metadata(path)
    takes_96k = not metadata.get("sample_rate") or 96000 in metadata["host_sample_rates"]
    assert module.get_host_rate() == ((96000,) if takes_96k else (0,))  # the last rate it could take
    deliver_host_rate(module, 44100)
    assert module.warmed_up and module.get_host_rate() == (44100,)
    assert check_setters(path, next(iter(module.get_methods())), 48000) == []


def test_setters_after_playing_as_nn_does_fail_on_a_state_reset_in_place(tmp_path):
    """nn~ plays under inference mode and sets attributes outside it: a reset that zeroes a tensor the
    method replaced raises there (a rate change in Live), one that makes a new tensor does not."""
    for in_place, want in ((True, ["set host_rate", "reset"]), (False, [])):
        module = load_ts(saved(Echo(in_place), tmp_path / f"echo_{in_place}.ts"))
        deliver_host_rate(module, 44100)
        problems = check_setters_after_playing(module, 48000)
        assert [p.split(" after playing")[0] for p in problems] == want, problems
        assert all("inference tensor" in p for p in problems)
    careless = load_ts(tmp_path / "echo_True.ts")
    heard = NNHost(careless, "forward", 512).process(torch.ones(1, 1, 1024))  # under inference mode, as nn~
    assert torch.equal(heard[..., 512:], torch.ones(1, 1, 512))  # the echo of the first buffer
    with pytest.raises(HostError, match="inference tensor"):
        set_attribute(careless, "host_rate", ["48000"])
