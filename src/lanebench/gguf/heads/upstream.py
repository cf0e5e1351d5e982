"""The upstream dialect (llama.cpp ``src/models/gemma4-assistant.cpp``, PR #23398).

Architecture ``gemma4-assistant``; ``embedding_length_out`` holds the backbone width (and must
differ from the head's own ``embedding_length``), ``nextn_predict_layers`` = ``block_count``;
tensors ``nextn.pre_projection`` / ``nextn.post_projection``. Its converter leaves the
masked-embedding centroids out (the loader computes full logits).
"""

from __future__ import annotations

from types import MappingProxyType

from lanebench.gguf import keys as K
from lanebench.gguf.heads.base import CENTROIDS, HeadDialect, HeadParams
from lanebench.gguf.meta import Meta
from lanebench.gguf.writer import KV, u32


class Upstream(HeadDialect):
    name = "upstream"
    arch = "gemma4-assistant"
    server = "upstream"
    backbone = K.EMBEDDING_LENGTH_OUT
    own_keys = (K.EMBEDDING_LENGTH_OUT, K.NEXTN_PREDICT_LAYERS)
    convert_skips = MappingProxyType(
        dict.fromkeys(CENTROIDS, "upstream computes full logits; as llama.cpp's converter")
    )

    def own_kvs(self, hp: HeadParams) -> list[KV]:
        return [
            u32(K.EMBEDDING_LENGTH_OUT.name(self.arch), hp.backbone),
            u32(K.NEXTN_PREDICT_LAYERS.name(self.arch), hp.n_layer),
        ]

    def rules(self, head: Meta, hp: HeadParams, main: Meta | None = None) -> list[str]:
        out = super().rules(head, hp, main)
        if hp.backbone == hp.hidden:
            out.append(
                f"embedding_length_out: expected it to differ from embedding_length, found both {hp.hidden}"
            )
        nextn = head.get(K.NEXTN_PREDICT_LAYERS)
        if nextn != hp.n_layer:
            out.append(f"nextn_predict_layers: expected {hp.n_layer} (block_count), found {nextn}")
        return out
