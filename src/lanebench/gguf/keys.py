"""Every GGUF key lanebench reads or writes, each named once, with what its value must hold.

Names are gguf-py's ``Keys`` templates (``{arch}`` stands for the file's
``general.architecture``), so a key is never typed out. A key gguf-py does not know (the Atomic
fork's head keys) is named by the head dialect that owns it and registered here with
:func:`register`; ``meta.validate`` checks every registered key of a file when it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from gguf.constants import Keys

INT32_MAX = (1 << 31) - 1
UINT32_MAX = (1 << 32) - 1
MAX_LAYERS = 512  # LLAMA_MAX_LAYERS
ARCH_PREFIX = "{arch}."

Kind = Literal["int", "float", "bool", "str", "name", "layers", "pattern", "strs", "floats", "ints"]
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Spec:
    """What one key must hold. ``name``: a printable string; ``layers``: an int, or one int
    per layer; ``pattern``: an int period, or one bool per layer; ``strs``/``floats``/``ints``:
    arrays."""

    kind: Kind
    hi: int = INT32_MAX  # ints: inclusive upper bound (the lower bound is 0)


@dataclass(frozen=True, slots=True)
class Key(Generic[V]):
    """One GGUF key: its name template and its Spec. ``V`` is the type ``Meta.get`` returns:
    ``layers`` keys read as one int per layer, ``pattern`` keys as bools per layer or a period."""

    template: str
    spec: Spec

    @property
    def scoped(self) -> bool:
        """True for a ``{arch}.*`` key."""
        return self.template.startswith(ARCH_PREFIX)

    def name(self, arch: str) -> str:
        """The key's name in a file of architecture ``arch``."""
        return self.template.replace("{arch}", arch, 1) if self.scoped else self.template


INT, FLOAT, BOOL, STR = Spec("int"), Spec("float"), Spec("bool"), Spec("str")
LAYERS, PATTERN = Spec("layers"), Spec("pattern")
G, TK, LLM, ATT, ROPE = Keys.General, Keys.Tokenizer, Keys.LLM, Keys.Attention, Keys.Rope

# ---- general.* and tokenizer.* ----------------------------------------------------------
ARCHITECTURE: Key[str] = Key(G.ARCHITECTURE, Spec("name"))  # it prefixes key names, in messages too
NAME: Key[str] = Key(G.NAME, STR)
TYPE: Key[str] = Key(G.TYPE, STR)
SIZE_LABEL: Key[str] = Key(G.SIZE_LABEL, STR)
FILE_TYPE: Key[int] = Key(G.FILE_TYPE, INT)
QUANTIZATION_VERSION: Key[int] = Key(G.QUANTIZATION_VERSION, INT)
ALIGNMENT: Key[int] = Key(G.ALIGNMENT, INT)  # checked by layout.parse, as the format demands
TOKENIZER_MODEL: Key[str] = Key(TK.MODEL, STR)
TOKENIZER_PRE: Key[str] = Key(TK.PRE, STR)
TOKENS: Key[tuple[str, ...]] = Key(TK.LIST, Spec("strs"))
SCORES: Key[Any] = Key(TK.SCORES, Spec("floats"))
TOKEN_TYPE: Key[Any] = Key(TK.TOKEN_TYPE, Spec("ints"))
BOS_ID: Key[int] = Key(TK.BOS_ID, Spec("int", UINT32_MAX))
EOS_ID: Key[int] = Key(TK.EOS_ID, Spec("int", UINT32_MAX))
ADD_BOS: Key[bool] = Key(TK.ADD_BOS, BOOL)
ADD_EOS: Key[bool] = Key(TK.ADD_EOS, BOOL)
TOKENIZER_PREFIX = "tokenizer."  # every key under it travels with a vocabulary
PER_TOKEN = (SCORES, TOKEN_TYPE)  # one entry per token

# ---- {arch}.* ---------------------------------------------------------------------------
BLOCK_COUNT: Key[int] = Key(LLM.BLOCK_COUNT, Spec("int", MAX_LAYERS))
CONTEXT_LENGTH: Key[int] = Key(LLM.CONTEXT_LENGTH, INT)
EMBEDDING_LENGTH: Key[int] = Key(LLM.EMBEDDING_LENGTH, INT)
EMBEDDING_LENGTH_OUT: Key[int] = Key(LLM.EMBEDDING_LENGTH_OUT, INT)
EMBEDDING_LENGTH_PER_LAYER_INPUT: Key[int] = Key(LLM.EMBD_LENGTH_PER_LAYER_INP, INT)
NEXTN_PREDICT_LAYERS: Key[int] = Key(LLM.NEXTN_PREDICT_LAYERS, INT)
FEED_FORWARD_LENGTH: Key[tuple[int, ...]] = Key(LLM.FEED_FORWARD_LENGTH, LAYERS)
EXPERT_COUNT: Key[int] = Key(LLM.EXPERT_COUNT, INT)
EXPERT_USED_COUNT: Key[int] = Key(LLM.EXPERT_USED_COUNT, INT)
EXPERT_FEED_FORWARD_LENGTH: Key[int] = Key(LLM.EXPERT_FEED_FORWARD_LENGTH, INT)
FINAL_LOGIT_SOFTCAPPING: Key[float] = Key(LLM.FINAL_LOGIT_SOFTCAPPING, FLOAT)
HEAD_COUNT: Key[tuple[int, ...]] = Key(ATT.HEAD_COUNT, LAYERS)
HEAD_COUNT_KV: Key[tuple[int, ...]] = Key(ATT.HEAD_COUNT_KV, LAYERS)
KEY_LENGTH: Key[int] = Key(ATT.KEY_LENGTH, INT)
VALUE_LENGTH: Key[int] = Key(ATT.VALUE_LENGTH, INT)
KEY_LENGTH_SWA: Key[int] = Key(ATT.KEY_LENGTH_SWA, INT)
VALUE_LENGTH_SWA: Key[int] = Key(ATT.VALUE_LENGTH_SWA, INT)
SLIDING_WINDOW: Key[int] = Key(ATT.SLIDING_WINDOW, INT)
SLIDING_WINDOW_PATTERN: Key[tuple[bool, ...] | int] = Key(ATT.SLIDING_WINDOW_PATTERN, PATTERN)
SHARED_KV_LAYERS: Key[int] = Key(ATT.SHARED_KV_LAYERS, INT)
RMS_EPS: Key[float] = Key(ATT.LAYERNORM_RMS_EPS, FLOAT)
ROPE_FREQ_BASE: Key[float] = Key(ROPE.FREQ_BASE, FLOAT)
ROPE_FREQ_BASE_SWA: Key[float] = Key(ROPE.FREQ_BASE_SWA, FLOAT)
ROPE_DIMENSION_COUNT: Key[int] = Key(ROPE.DIMENSION_COUNT, INT)
ROPE_DIMENSION_COUNT_SWA: Key[int] = Key(ROPE.DIMENSION_COUNT_SWA, INT)

_KNOWN: dict[str, Key[Any]] = {}


def register(*keys: Key[Any]) -> None:
    """Make ``keys`` known to the validator. A template registered again with another Spec is a
    programming error (two owners disagree on what the key holds)."""
    for key in keys:
        old = _KNOWN.get(key.template)
        if old is not None and old != key:
            raise ValueError(f"GGUF key {key.template!r} registered twice ({old.spec} and {key.spec})")
        _KNOWN[key.template] = key


def forget(*keys: Key[Any]) -> None:
    """Stop checking ``keys`` (a dialect unregistered)."""
    for key in keys:
        _KNOWN.pop(key.template, None)


def known() -> tuple[Key[Any], ...]:
    """Every registered key, in registration order."""
    return tuple(_KNOWN.values())


# what ``meta.validate`` checks (general.type and general.alignment are left to the format)
register(
    ARCHITECTURE, NAME, SIZE_LABEL, FILE_TYPE, QUANTIZATION_VERSION, TOKENIZER_MODEL, TOKENIZER_PRE,
    TOKENS, SCORES, TOKEN_TYPE, BOS_ID, EOS_ID, ADD_BOS, ADD_EOS,
    BLOCK_COUNT, CONTEXT_LENGTH, EMBEDDING_LENGTH, EMBEDDING_LENGTH_OUT, EMBEDDING_LENGTH_PER_LAYER_INPUT,
    NEXTN_PREDICT_LAYERS, FEED_FORWARD_LENGTH, EXPERT_COUNT, EXPERT_USED_COUNT, EXPERT_FEED_FORWARD_LENGTH,
    HEAD_COUNT, HEAD_COUNT_KV, KEY_LENGTH, VALUE_LENGTH, KEY_LENGTH_SWA, VALUE_LENGTH_SWA, SLIDING_WINDOW,
    SLIDING_WINDOW_PATTERN, SHARED_KV_LAYERS, RMS_EPS, ROPE_FREQ_BASE, ROPE_FREQ_BASE_SWA,
    ROPE_DIMENSION_COUNT, ROPE_DIMENSION_COUNT_SWA, FINAL_LOGIT_SOFTCAPPING,
)  # fmt: skip
