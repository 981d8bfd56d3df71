"""Checkpoints carry every generator a resumed run draws from: the CPU one and, on a GPU, each CUDA device's.

No GPU is on the test machines, so the CUDA side is exercised through torch.cuda's own state functions
replaced by a record of two devices; the CPU side is real (and the resume-is-exact tests of test_train.py run
whole runs on it)."""

import torch

from latentlive.training import loop


class TwoFakeDevices:
    """What torch.cuda reports on a machine with two initialised CUDA devices."""

    def __init__(self) -> None:
        self.states = [torch.tensor([1, 2], dtype=torch.uint8), torch.tensor([3, 4], dtype=torch.uint8)]
        self.set_to: list[torch.Tensor] | None = None

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states])
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: setattr(self, "set_to", states))


def test_every_cuda_generator_is_saved_and_restored(monkeypatch) -> None:
    devices = TwoFakeDevices()
    devices.install(monkeypatch)
    saved = loop._rng_states()
    assert [s.tolist() for s in saved["cuda_rng_states"]] == [[1, 2], [3, 4]]
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    checkpoint = loop._rng_states()
    torch.rand(100)  # the run goes on after the checkpoint
    loop.restore_rng_states({**checkpoint, "cuda_rng_states": saved["cuda_rng_states"]})
    assert torch.equal(torch.rand(3), expected)
    assert [s.tolist() for s in devices.set_to] == [[1, 2], [3, 4]]


def test_cuda_states_are_left_alone_on_a_machine_with_other_devices(monkeypatch) -> None:
    devices = TwoFakeDevices()
    devices.install(monkeypatch)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    loop.restore_rng_states({"rng_state": torch.get_rng_state(), "cuda_rng_states": devices.states})
    assert devices.set_to is None


def test_a_cpu_run_saves_no_cuda_state(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert set(loop._rng_states()) == {"rng_state"}
