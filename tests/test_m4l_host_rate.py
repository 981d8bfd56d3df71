"""Every device tells its nn~ objects Live's sample rate (issue 13): nn~ 1.6.0 never calls ``set_sample_rate``
on a first load, so ``dspstate~`` -> ``set host_rate RATE`` -> each nn~, when the device is ready, after every
model load and every two seconds; a rate the model does not support turns the status line red."""

from pathlib import Path

import pytest
from device_graph import DeviceGraph

from latentlive import registry
from latentlive.cli import main
from latentlive.export.metadata import read_metadata
from latentlive.m4l_devices.common import host_rates_of

KINDS = ("drums", "drumsynth", "techno", "techno_prior", "grain", "band")


@pytest.fixture(scope="module")
def devices(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind's device, built from the tiny exports, by kind."""
    built = {}
    for kind in KINDS:
        ts = request.getfixturevalue(f"{kind}_ts")
        out = tmp_path_factory.mktemp(kind)
        assert main(["devices", "--run", str(ts.parent.parent), "--out", str(out)]) == 0
        built[kind] = out / f"{registry.device_name(kind)}.amxd"  # not its companions: they load no model
    return built


def rate_problems(g: DeviceGraph, host_rates: tuple[int, ...] | None) -> list[str]:
    """What keeps the rate from every nn~ of the device ``g`` (or its refusal from the status line)."""
    problems = []
    dsp = g.find("dspstate~")
    if len(dsp) != 1:
        return [f"{len(dsp)} dspstate~ boxes"]
    (dsp,) = dsp
    message = g.find("prepend set host_rate")
    if len(message) != 1 or not g.reaches(dsp, (message[0], 0), depth=3):
        return ["dspstate~ does not reach one 'prepend set host_rate'"]
    if (dsp, 1) not in [(s, o) for s, o in g.into(g.sources(message[0])[0])]:
        problems.append("the rate is not dspstate~'s sampling-rate outlet")
    for nn in g.find("nn~ "):
        if (nn, 0) not in g.out(message[0], 0):
            problems.append(f"{g.text(nn)} is not told the rate")
    for trigger in ("live.thisdevice", "t b l l", "metro 2000"):
        if not any(g.reaches(b, (dsp, 0), depth=3) for b in g.find(trigger)):
            problems.append(f"{trigger} does not make dspstate~ report the rate")
    checks = g.find("sel ")
    checks = [c for c in checks if g.reaches(dsp, (c, 0), depth=3)]
    if host_rates is None:
        if checks:
            problems.append("a model of any rate checks the rate")
        return problems
    if [g.text(c) for c in checks] != [f"sel {' '.join(map(str, host_rates))}"]:
        return problems + [f"the rate check is {[g.text(c) for c in checks]}"]
    refused = [d for d, _ in g.out(checks[0], len(host_rates))]
    if len(refused) != 1 or "not supported" not in g.text(refused[0]):
        problems.append("an unsupported rate does not reach the 'not supported' message")
    elif not any(g.text(d).startswith("Model:") for d, _ in g.out(refused[0])):
        problems.append("the 'not supported' message does not reach the status line")
    return problems


@pytest.mark.parametrize("kind", KINDS)
def test_the_device_sends_the_host_rate_to_every_nn_object(devices, kind, request):
    rates = host_rates_of(read_metadata(request.getfixturevalue(f"{kind}_ts")))
    assert (rates is None) == (kind in ("drums", "band"))
    assert rate_problems(DeviceGraph(devices[kind]), rates) == []


def test_the_check_fails_on_a_device_without_the_rate_path(devices, tmp_path):
    g = DeviceGraph(devices["techno"])
    (message,) = g.find("prepend set host_rate")
    g.lines = [line for line in g.lines if not (line[0] == message and g.text(line[2]).startswith("nn~"))]
    assert any("is not told the rate" in p for p in rate_problems(g, (44100, 48000)))
    g = DeviceGraph(devices["grain"])
    (check,) = [c for c in g.find("sel ") if "44100" in g.text(c)]
    g.lines = [line for line in g.lines if line[0] != check]
    assert any("not supported" in p for p in rate_problems(g, (44100, 48000)))
