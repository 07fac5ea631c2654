"""Models: the TransformerLens adapter (:mod:`.adapter`), where models come from
(:mod:`.loading`) and tokenizers (:mod:`.tokenizer`)."""

from headgraph.errors import ModelError
from headgraph.ingest.model.adapter import Model, processing_steps
from headgraph.ingest.model.loading import (
    PRESETS,
    Architecture,
    build_hooked,
    build_model,
    load_model,
)
from headgraph.ingest.model.tokenizer import HFTokenizer, Tokenizer, WordTokenizer

__all__ = [
    "PRESETS",
    "Architecture",
    "HFTokenizer",
    "Model",
    "ModelError",
    "Tokenizer",
    "WordTokenizer",
    "build_hooked",
    "build_model",
    "load_model",
    "processing_steps",
]
