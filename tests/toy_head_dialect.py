"""A toy head dialect, added the way docs/heads.md says: one new module, one class.

Its loader (imaginary) knows heads as ``toy-assistant``, keeps the backbone width in a key of
its own, names the two projections ``toy.in`` / ``toy.out``, and takes at most 2 layers.
Importing this module registers it: ``convert-head --dialect toy``, ``gguf translate --to toy``,
``gguf inspect`` and ``gguf check`` then know it.
"""

from __future__ import annotations

from types import MappingProxyType

from lanebench.gguf.heads import HeadDialect, HeadParams
from lanebench.gguf.keys import INT, Key
from lanebench.gguf.meta import Meta
from lanebench.gguf.writer import KV, u32

BACKBONE: Key[int] = Key("{arch}.toy_backbone", INT)
MAX_LAYERS = 2


class Toy(HeadDialect):
    name = "toy"
    arch = "toy-assistant"
    server = "toy"  # builds whose speculative flags are the "toy" family load it
    backbone = BACKBONE
    own_keys = (BACKBONE,)
    renames = MappingProxyType(
        {"nextn.pre_projection.weight": "toy.in.weight", "nextn.post_projection.weight": "toy.out.weight"}
    )

    def own_kvs(self, hp: HeadParams) -> list[KV]:
        return [u32(BACKBONE.name(self.arch), hp.backbone)]

    def rules(self, head: Meta, hp: HeadParams, main: Meta | None = None) -> list[str]:
        out = super().rules(head, hp, main)
        if hp.n_layer > MAX_LAYERS:
            out.append(f"block_count: expected at most {MAX_LAYERS} (the toy loader), found {hp.n_layer}")
        return out
