"""Fingerprints: tool-output parsers, log backends, the cached content hash, GGUF summary."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lanebench.engines.llamacpp import fingerprint as llama_fp
from lanebench.host import filehash, hostinfo
from lanebench.orchestration import fingerprint as fp

# the first line as an H200 machine printed it (device tool, Ubuntu 24.04, driver 580)
NVIDIA_SMI = "NVIDIA H200, 143771 MiB, 580.159.04\nNVIDIA H100 80GB HBM3, 81559 MiB, 550.54.15\n"

ROCMINFO = """ROCk module is loaded
*******
Agent 1
*******
  Name:                    AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Marketing Name:          AMD RYZEN AI MAX+ 395 w/ Radeon 8060S
  Device Type:             CPU
*******
Agent 2
*******
  Name:                    gfx1151
  Uuid:                    GPU-XX
  Marketing Name:          AMD Radeon Graphics
  Device Type:             GPU
"""

VULKANINFO = """==========
VULKANINFO
==========

Devices:
========
GPU0:
	apiVersion         = 1.4.318
	driverVersion      = 25.2.8
	vendorID           = 0x1002
	deviceType         = PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU
	deviceName         = AMD Radeon 8060S Graphics (RADV GFX1151)
	driverID           = DRIVER_ID_MESA_RADV
	driverName         = radv
	driverInfo         = Mesa 25.2.8-0ubuntu0.24.04.1
GPU1:
	apiVersion         = 1.4.318
	deviceType         = PHYSICAL_DEVICE_TYPE_CPU
	deviceName         = llvmpipe (LLVM 20.1.2, 256 bits)
	driverName         = llvmpipe
	driverInfo         = Mesa 25.2.8 (LLVM 20.1.2)
"""

ROCM_SMI_JSON = '{"card0": {"Card Series": "Strix Halo", "Card model": "0x1586", "GFX Version": "gfx1151"}}'

CPUINFO = "".join(
    f"processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {i // 2}\nmodel name\t: X\n\n" for i in range(8)
)


def test_nvidia_smi_rows() -> None:
    gpus = hostinfo.parse_nvidia_smi(NVIDIA_SMI)
    assert len(gpus) == 2
    assert gpus[0] == {
        "vendor": "nvidia",
        "name": "NVIDIA H200",
        "memory": "143771 MiB",
        "driver": "580.159.04",
    }
    assert gpus[1]["name"] == "NVIDIA H100 80GB HBM3"


def test_rocminfo_keeps_gpu_agents_only() -> None:
    assert hostinfo.parse_rocminfo(ROCMINFO) == [
        {"vendor": "amd", "name": "AMD Radeon Graphics", "gfx": "gfx1151"}
    ]


def test_rocm_smi_json() -> None:
    assert hostinfo.parse_rocm_smi_json(ROCM_SMI_JSON)[0]["gfx"] == "gfx1151"
    assert hostinfo.parse_rocm_smi_json("not json") == []


def test_vulkaninfo_devices_and_mesa_version() -> None:
    devices = hostinfo.parse_vulkaninfo_summary(VULKANINFO)
    assert [d["name"] for d in devices] == [
        "AMD Radeon 8060S Graphics (RADV GFX1151)",
        "llvmpipe (LLVM 20.1.2, 256 bits)",
    ]
    assert devices[0]["type"] == "integrated_gpu"
    assert hostinfo.mesa_version(devices) == "Mesa 25.2.8-0ubuntu0.24.04.1 / RADV"


def test_physical_cores_and_os_name() -> None:
    assert hostinfo.physical_cores(CPUINFO) == 4
    assert hostinfo.physical_cores("processor : 0\n") is None
    assert hostinfo.os_pretty_name('NAME="Linux Mint"\nPRETTY_NAME="Linux Mint 22.3"\n') == "Linux Mint 22.3"


def test_absent_tools_are_simply_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert hostinfo.run_tool(["nvidia-smi"]) is None
    details = hostinfo.gpu_details()
    assert not {"nvidia", "rocminfo", "rocm_smi", "vulkan"} & set(details)
    assert hostinfo.host_details()["hostname"] == hostinfo.host_basics()["hostname"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 0.6.0-dev (build 11434, commit unknown)\nbuilt with GNU 12.2.0 for Linux x86_64",
            {
                "version": "0.6.0-dev",
                "build": 11434,
                "commit": "unknown",
                "compiler": "GNU 12.2.0",
                "target": "Linux",
            },
        ),
        (
            "version: 6120 (a1b2c3d4)\nbuilt with cc (Ubuntu 13.3.0) 13.3.0 for x86_64-linux-gnu",
            {
                "build": 6120,
                "commit": "a1b2c3d4",
                "compiler": "cc (Ubuntu 13.3.0) 13.3.0",
                "target": "x86_64-linux-gnu",
            },
        ),
    ],
)
def test_version_lines(text: str, expected: dict[str, object]) -> None:
    parsed = llama_fp.parse_version(text)
    assert {k: parsed.get(k) for k in expected} == expected


def test_backends_from_log_lines() -> None:
    log = "\n".join(
        [
            "load_backend: loaded CUDA backend from /x/libggml-cuda.so",
            "load_backend: loaded CPU backend from /x/libggml-cpu-haswell.so",
            "ggml_cuda_init: found 1 CUDA devices:",
            "  Device 0: NVIDIA H100 80GB HBM3, compute capability 9.0, VMM: yes",
            "ggml_vulkan: 0 = AMD Radeon 8060S Graphics (RADV GFX1151) (radv) | uma: 1 | fp16: 1 |",
            "llama_model_load_from_file_impl: using device CUDA0 (NVIDIA H100 80GB HBM3) - 80000 MiB free",
        ]
    )
    assert llama_fp.backends_from_log(log) == [
        "CUDA",
        "CPU",
        "CUDA0 (NVIDIA H100 80GB HBM3)",
        "AMD Radeon 8060S Graphics (RADV GFX1151) (radv)",
        "NVIDIA H100 80GB HBM3",
    ]
    assert llama_fp.backends_from_log("nothing here") == []


def test_backend_libs_next_to_the_binary(tmp_path: Path) -> None:
    for name in ("llama-server", "libggml-base.so", "libggml-cpu.so", "libggml-vulkan.so", "libllama.so"):
        (tmp_path / name).write_bytes(b"")
    assert llama_fp.backend_libs(tmp_path / "llama-server") == ["cpu", "vulkan"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(filehash, "cache_dir", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def test_hash_is_cached_by_path_size_and_mtime(tmp_path: Path, cache: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"a" * 1000)
    first = filehash.file_sha256(f)
    st = f.stat()
    f.write_bytes(b"b" * 1000)  # same size; put the old mtime back: the cache answers
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert filehash.file_sha256(f) == first
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # touched: hashed again
    assert filehash.file_sha256(f) != first
    assert (cache / filehash.CACHE_FILE).is_file()


def test_model_fingerprint_of_a_real_gguf(tmp_path: Path, cache: Path) -> None:
    import gguf

    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny test")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    f = fp.model_fingerprint(path)
    assert f["arch"] == "llama" and f["name"] == "tiny test"
    assert f["size_bytes"] == path.stat().st_size and len(f["sha256"]) == 64
    assert f["n_params"] == 16 * 8 + 8 and f["file_type_name"] == "F16"
    assert f["quant_mix"] == {
        "F16": {"tensors": 1, "bytes": 256, "params": 128},
        "F32": {"tensors": 1, "bytes": 32, "params": 8},
    }
    assert fp.model_fingerprint(path) == f  # second time from the cache


def test_a_non_gguf_model_still_gets_size_and_hash(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"NOPE" + b"\0" * 60)
    f = fp.model_fingerprint(path)
    assert f["size_bytes"] == 64 and "gguf_error" in f and "arch" not in f
