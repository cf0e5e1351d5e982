from pathlib import Path

import pytest

from lanebench.memory.logparse import is_host_device, parse_buffers

LOG = Path(__file__).parents[1] / "fixtures" / "serverlog" / "b11434-270m-self-draft-lv4.log"


def test_real_self_draft_log_has_main_and_draft_sections() -> None:
    main, draft = parse_buffers(LOG.read_text())
    assert main.weights == {"CPU_Mapped": 235.16, "CPU_REPACK": 12.66}
    assert sum(main.kv.values()) == pytest.approx(9.0)  # 1.50 (3 full layers) + 7.50 (15 SWA)
    assert main.compute == {"CPU": pytest.approx(20.78)}  # 2.00 output + 18.78 compute
    assert draft.total() == pytest.approx(main.total())  # the same GGUF loaded again as draft
    assert main.host() == pytest.approx(main.total())


def test_old_kv_self_size_and_gpu_devices() -> None:
    text = "\n".join(
        [
            "load_tensors:        CUDA0 model buffer size =  1000.00 MiB",
            "load_tensors:   CPU_Mapped model buffer size =    50.00 MiB",
            "llama_new_context_with_model: KV self size  =  64.00 MiB, K (f16):   32.00 MiB",
            "llama_new_context_with_model:      CUDA0 compute buffer size =   100.00 MiB",
            "llama_new_context_with_model:  CUDA_Host compute buffer size =    10.00 MiB",
        ]
    )
    (m,) = parse_buffers(text)
    assert m.kv == {"CPU": 64.0}
    assert m.host() == pytest.approx(50 + 64 + 10)
    assert is_host_device("CUDA_Host") and not is_host_device("CUDA0")


def test_no_buffer_lines() -> None:
    assert parse_buffers("srv llama_server: listening\n") == []
