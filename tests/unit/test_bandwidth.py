"""Bandwidth: parsing, the known-devices table, summarising samples (pure), and a tiny real
measurement checked for structure only (no timing thresholds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanebench.errors import BadInput
from lanebench.host.bandwidth import (
    KNOWN_DEVICES,
    Sample,
    find_device,
    llc_bytes,
    measure_bandwidth,
    parse_bandwidth,
    plan_sizes,
    summarize,
)


@pytest.mark.parametrize(
    ("text", "bytes_per_s"),
    [
        ("256", 256e9),
        ("256GB/s", 256e9),
        ("256 gb/s", 256e9),
        ("3.35TB/s", 3.35e12),
        ("800GBps", 800e9),
        ("500MB/s", 500e6),
        ("1008g", 1008e9),
    ],
)
def test_parse_bandwidth(text: str, bytes_per_s: float) -> None:
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


@pytest.mark.parametrize("text", ["", "fast", "-5", "0", "256 GiB/min"])
def test_parse_bandwidth_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="--bandwidth"):
        parse_bandwidth(text)


def test_known_devices_have_the_datasheet_figures_and_sources() -> None:
    expected = {
        "strix-halo": 256,
        "h100-sxm": 3350,
        "h100-pcie": 2000,
        "h200": 4800,
        "rtx-4090": 1008,
        "rtx-3090": 936,
        "m2-ultra": 800,
        "m4-max": 546,
    }
    assert {k: d.bandwidth_gbs for k, d in KNOWN_DEVICES.items()} == expected
    for d in KNOWN_DEVICES.values():
        assert d.url.startswith("https://") and d.source


def test_find_device() -> None:
    assert find_device("H100 SXM").key == "h100-sxm"
    assert find_device("strix_halo").bandwidth_gbs == 256
    with pytest.raises(BadInput, match="known: strix-halo"):
        find_device("tpu-v9")


def test_summarize_takes_median_per_size_then_over_sizes() -> None:
    gb = 10**9
    samples = [
        # read: 1 GB moved per pass; per-size medians 10, 20, 30 GB/s
        *(Sample("read", 64, 2, 1 / v, gb) for v in (9, 10, 50)),
        *(Sample("read", 128, 2, 1 / v, gb) for v in (20, 20, 1)),
        *(Sample("read", 256, 2, 1 / v, gb) for v in (30, 31, 29)),
        # copy counts read + write: 2 GB per pass in 0.1 s = 20 GB/s
        *(Sample("copy", 64, 2, 0.1, 2 * gb) for _ in range(3)),
    ]
    r = summarize(samples, threads=2, llc_bytes=32)
    assert r.per_size["read"] == {64: pytest.approx(10), 128: pytest.approx(20), 256: pytest.approx(30)}
    assert r.read_gbs == pytest.approx(20)
    assert r.copy_gbs == pytest.approx(20)
    assert r.bandwidth_bytes_per_s == pytest.approx(20e9)
    assert r.sizes_bytes == [64, 128, 256]
    with pytest.raises(ValueError):
        summarize([s for s in samples if s.op == "read"], 2, 32)


def test_plan_sizes_are_well_above_the_llc_and_capped() -> None:
    assert plan_sizes(32 << 20) == [128 << 20, 256 << 20, 512 << 20]
    assert plan_sizes(1 << 20) == [64 << 20]  # at least 64 MiB
    assert max(plan_sizes(256 << 20, cap=1 << 30)) == 1 << 30


def test_llc_bytes_reads_sysfs(tmp_path: Path) -> None:
    for i, size in enumerate(("48K", "1024K", "32768K")):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert llc_bytes(tmp_path) == 32 << 20
    assert llc_bytes(tmp_path / "missing") == 32 << 20  # fallback


def test_tiny_measurement_has_the_right_shape() -> None:
    r = measure_bandwidth(sizes=[1 << 20, 2 << 20], threads=2, reps=2, budget_s=5)
    assert r.threads == 2
    assert r.sizes_bytes == [1 << 20, 2 << 20]
    assert len(r.samples) == 2 * 2 * 2  # sizes x ops x reps
    assert {s.op for s in r.samples} == {"read", "copy"}
    assert all(s.bytes_moved == (2 if s.op == "copy" else 1) * s.size_bytes for s in r.samples)
    assert r.read_gbs > 0 and r.copy_gbs > 0
    assert set(r.to_dict()) >= {"read_gbs", "copy_gbs", "samples", "per_size"}
