"""Parameter and multiply-accumulate counts of a torch model, measured on one forward pass."""

from __future__ import annotations

import contextlib

from torch import nn


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@contextlib.contextmanager
def count_macs():
    """Within the block, every Conv2d/ConvTranspose2d/Linear call adds its MACs to the yielded dict."""
    total = {"macs": 0}

    def hook(mod, inputs, output):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total["macs"] += output.numel() * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.out_channels // mod.groups
            total["macs"] += inputs[0].numel() * k
        elif isinstance(mod, nn.Linear):
            total["macs"] += output.numel() * mod.in_features

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield total
    finally:
        handle.remove()
