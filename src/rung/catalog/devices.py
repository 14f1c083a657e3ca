"""The device classes a model is fitted to, with how much of each a model may use.

These are assumptions, stated so they can be argued with (and changed here in one place):

- **phone** — 6 GiB of RAM. Android and iOS keep the system, the launcher and other apps
  resident, and kill a foreground app that grows far past its share; a model may count on about
  half the RAM (3 GiB).
- **laptop** — 16 GiB of RAM shared with the OS, a browser and an editor; about 60% (9.6 GiB).
- **gpu24** — one 24 GiB GPU (RTX 4090, L4, A10G class); about 90% is usable once the CUDA
  context and allocator fragmentation take their share.
- **gpu80** — one 80 GiB GPU (A100 80GB, H100 class); 90% usable.
- **multi-gpu** — eight 80 GiB GPUs with the model split across them (tensor parallel); 90% of
  the total, assuming the split is even.

A gigabyte here is a GiB (2**30 bytes), the unit device memory is sold in.

Each class also has a default hourly price, used only to turn a local rung's measured throughput
into a cost per 1,000 requests. They are rounded on-demand cloud prices of a machine of that
class (order of magnitude, not quotes): a 4-vCPU/16 GB VM for the laptop, one L4/A10G for
gpu24, one H100/A100-80GB for gpu80 and eight of them for multi-gpu. A phone is the user's own
device, so its hourly price is 0. Override them with ``--hourly-price``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rung.errors import ConfigurationError, did_you_mean

__all__ = ["DEVICES", "Device", "UnknownDeviceError", "get_device"]

GIB = 2**30


class UnknownDeviceError(ConfigurationError):
    pass


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    memory_bytes: int
    usable_fraction: float
    kind: str  # "cpu" (RAM) or "gpu" (VRAM)
    hourly_usd: float
    why_usable: str

    @property
    def usable_bytes(self) -> int:
        return int(self.memory_bytes * self.usable_fraction)


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device(
            "phone", "phone, 6 GB RAM", 6 * GIB, 0.5, "cpu", 0.0,
            "the OS and other apps keep about half of a phone's RAM",
        ),
        Device(
            "laptop", "laptop, 16 GB RAM", 16 * GIB, 0.6, "cpu", 0.20,
            "the OS, a browser and an editor keep about 40% of a laptop's RAM",
        ),
        Device(
            "gpu24", "one 24 GB GPU", 24 * GIB, 0.9, "gpu", 0.80,
            "the CUDA context and fragmentation take about 10% of a GPU",
        ),
        Device(
            "gpu80", "one 80 GB GPU", 80 * GIB, 0.9, "gpu", 2.50,
            "the CUDA context and fragmentation take about 10% of a GPU",
        ),
        Device(
            "multi-gpu", "8 × 80 GB GPUs", 8 * 80 * GIB, 0.9, "gpu", 20.0,
            "10% of each GPU is lost to the CUDA context; the model is split evenly",
        ),
    )
}  # fmt: skip


def get_device(name: str) -> Device:
    key = name.strip().lower()
    if key in DEVICES:
        return DEVICES[key]
    raise UnknownDeviceError(
        f"unknown device {name!r}{did_you_mean(key, DEVICES)}; choose one of: {', '.join(DEVICES)}"
    )
