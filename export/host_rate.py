"""The host sample rate, as nn~ 1.6.0 can actually deliver it, and a first call without a stall
(docs/host_rate.md).

nn~ 1.6.0 never calls ``set_sample_rate`` when it first loads a model (``Backend::load`` calls it before the
model counts as loaded), and ``reload`` passes an uninitialised integer. So a model whose sound depends on the
rate takes it from an nn~ attribute, ``host_rate``, that its device sets from Live's rate
(``dspstate~`` -> ``set host_rate $1``, again when the rate changes); ``set_sample_rate`` is still honoured
when a host does call it with a supported rate.

Until it has a supported rate, such a module answers silence (``get_host_rate`` says 0) rather than play at
a wrong speed. No value raises: an unsupported one (0, negative, garbage, a rate without a resampling chain)
is kept in ``refused_rate`` and the module goes on with its last valid rate.

The first rate taken also warms the module up. TorchScript's profiling executor compiles each method's plan
on its first two calls (50-500 ms each, in nn~'s audio path). The heavy paths therefore sit in pre-scripted
submodules typed by a module interface: calls through an interface are not inlined, so each path keeps one
executor, shared by every caller and thread, which ``warm_up`` compiles in the message thread that sets the
rate. The nn~ methods around them stay small and cheap to compile.
"""

import nn_tilde
import torch
from torch import Tensor

WARM_UP_BUFFER = 2048  # host samples per warm-up call: the plans hold for every buffer size (measured)
WARM_UP_CALLS = 3  # the profiling executor optimises on the second call; the third runs the plan


class HostRateModule(nn_tilde.Module):
    """An nn~ module that learns the host rate from its ``host_rate`` attribute.

    Subclasses call ``super().__init__(rates)`` (None: any positive rate; the model does not depend on it,
    and its methods never answer silence) and define ``use_host_rate(rate)`` (switch every stream to
    ``rate`` and reset it) and ``warm_up()`` (call every heavy path ``warm_up_calls`` times on silence of
    ``warm_up_buffer`` host samples, then reset). Methods that depend on the rate start with ``if self.rate == 0: return self.silence(...)``.
    """

    def __init__(self, rates: tuple[int, ...] | None) -> None:
        super().__init__()
        self.any_rate = rates is None  # the model keeps time otherwise: any positive rate only warms it up
        # never empty: TorchScript types a list from its elements (-1 matches no rate: those are refused first)
        self.supported_rates = [int(r) for r in rates] if rates else [-1]
        self.rate = 0  # the host rate in use; 0 until a supported one arrives
        self.refused_rate = 0  # the last unsupported value asked for; 0 once a supported one is taken
        self.warmed_up = False
        self.warm_up_buffer, self.warm_up_calls = WARM_UP_BUFFER, WARM_UP_CALLS
        self.register_attribute("host_rate", 0)

    @torch.jit.export
    def get_host_rate(self) -> tuple[int]:
        """The rate in use (0: never told one)."""
        return (self.rate,)

    @torch.jit.export
    def set_host_rate(self, host_rate0: int) -> int:
        """nn~'s ``set host_rate RATE``; always answers 0, since nn~ throws on anything else."""
        self.take_rate(host_rate0)
        return 0

    @torch.jit.export
    def set_sample_rate(self, sample_rate: int | None) -> None:
        """For hosts that do call it: taken like ``set host_rate``; None and garbage are ignored."""
        if sample_rate is not None:
            self.take_rate(sample_rate)

    @torch.jit.export
    def take_rate(self, rate: int) -> None:
        """Switch to ``rate`` if it is supported and new, else note it in ``refused_rate``."""
        if rate <= 0 or not (self.any_rate or rate in self.supported_rates):
            self.refused_rate = rate
            return
        self.refused_rate = 0
        if rate == self.rate:
            return  # the devices send the rate again and again
        self.rate = 0  # the methods answer silence while the streams switch
        self.use_host_rate(rate)
        if not self.warmed_up:
            self.warm_up()
            self.warmed_up = True
        self.sr = rate
        self.host_rate = (rate,)
        self.rate = rate

    def silence(self, x: Tensor, channels: int, in_ratio: int, out_ratio: int) -> Tensor:
        """Zeros ``[B, channels, n * in_ratio / out_ratio]`` for an input ``[B, C, n]``."""
        return x.new_zeros(x.shape[0], channels, x.shape[-1] * in_ratio // out_ratio)
