"""The Atomic fork's dialect (AtomicBot-ai/atomic-llama-cpp-turboquant, May-June 2026 builds).

Architecture ``gemma4_assistant``; ``n_embd_backbone`` holds the backbone width,
``requires_target_arch`` names the target's architecture (its loader demands it), plus the
centroid keys and ``attention.k_eq_v``; tensors ``mtp.*``. gguf-py does not know these keys:
they are named here, once.
"""

from __future__ import annotations

from types import MappingProxyType

from lanebench.gguf.heads.base import HeadDialect, HeadParams
from lanebench.gguf.keys import BOOL, INT, STR, Key
from lanebench.gguf.meta import Meta
from lanebench.gguf.writer import KV, boolean, string, u32

N_EMBD_BACKBONE: Key[int] = Key("{arch}.n_embd_backbone", INT)
REQUIRES_TARGET_ARCH: Key[str] = Key("{arch}.requires_target_arch", STR)
N_CENTROIDS: Key[int] = Key("{arch}.n_centroids", INT)
CENTROID_TOP_K: Key[int] = Key("{arch}.centroid_top_k", INT)
USE_ORDERED_EMBEDDINGS: Key[bool] = Key("{arch}.use_ordered_embeddings", BOOL)
K_EQ_V: Key[bool] = Key("{arch}.attention.k_eq_v", BOOL)


class Atomic(HeadDialect):
    name = "atomic"
    arch = "gemma4_assistant"
    server = "atomic"
    backbone = N_EMBD_BACKBONE
    own_keys = (
        N_CENTROIDS, CENTROID_TOP_K, N_EMBD_BACKBONE, USE_ORDERED_EMBEDDINGS, K_EQ_V, REQUIRES_TARGET_ARCH
    )  # fmt: skip
    renames = MappingProxyType(
        {
            "nextn.pre_projection.weight": "mtp.pre_projection.weight",
            "nextn.post_projection.weight": "mtp.post_projection.weight",
            "masked_embd_centroids.weight": "mtp.centroids.weight",
            "masked_embd_ordering": "mtp.token_ordering.weight",
        }
    )

    def own_kvs(self, hp: HeadParams) -> list[KV]:
        a = self.arch
        return [
            u32(N_CENTROIDS.name(a), hp.n_centroids),
            u32(CENTROID_TOP_K.name(a), hp.centroid_top_k),
            u32(N_EMBD_BACKBONE.name(a), hp.backbone),
            boolean(USE_ORDERED_EMBEDDINGS.name(a), hp.use_ordered_embeddings),
            boolean(K_EQ_V.name(a), hp.k_eq_v),
            string(REQUIRES_TARGET_ARCH.name(a), self.target_arch),
        ]

    def rules(self, head: Meta, hp: HeadParams, main: Meta | None = None) -> list[str]:
        out = super().rules(head, hp, main)
        target = head.get(REQUIRES_TARGET_ARCH)
        if main is not None and target is not None and target != main.arch:
            out.append(f"requires_target_arch: expected {main.arch!r} (main), found {target!r}")
        return out
