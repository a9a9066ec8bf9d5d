"""Facts about the machine that every timing report records: CPU model, cores, threads, GPU, versions."""

from __future__ import annotations

import os
import platform
import re
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def _proc_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            return frozenset(re.search(r"^flags\s*:(.*)$", f.read(), re.M).group(1).split())
    except (OSError, AttributeError):
        return frozenset()


# Instruction-set extensions a compiler may use with -march=native (the flags in /proc/cpuinfo that name
# instructions, not the hypervisor's or the kernel's features).
_ISA_PREFIXES = ("sse", "ssse", "avx", "amx", "fma", "f16c", "bmi", "adx", "sha", "aes", "vaes", "vpclmul", "gfni")
_ISA_NAMES = {"popcnt", "lzcnt", "abm", "movbe", "pclmulqdq", "cx16", "rdrand", "rdseed"}


def isa_extensions() -> list[str]:
    """The instruction-set extensions this CPU has, sorted: what natively compiled code may rely on."""
    return sorted(f for f in _proc_flags() if f.startswith(_ISA_PREFIXES) or f in _ISA_NAMES)


@lru_cache(maxsize=1)
def cpu_flags() -> dict[str, bool]:
    """The ISA extensions that decide which CPU kernels are fast (AMX/AVX-512 bf16 vs AVX2 only)."""
    flags = _proc_flags()
    return {
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        # int8 dot products: with VNNI (or AMX) signed 8-bit activations are fast and do not saturate
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "amx_int8": "amx_int8" in flags,
    }


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (MemAvailable), or None where unknown."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict:
    import torch

    info = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
        info["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except ImportError:
        pass
    return info
