"""Which model to trace, and from where: a name, a folder, the bundled ``tiny-ioi``, a preset.

Every path ends in a processed :class:`~headgraph.ingest.model.adapter.Model`.
TransformerLens itself is called through the adapter only. Hugging Face's
offline switch is set for the duration of one load, never for the process: a
notebook kernel that loads a model offline can still reach the hub afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from headgraph.errors import ModelError
from headgraph.ingest.model.adapter import (
    Model,
    gpt2_weights,
    load_weights,
    new_hooked,
    pretrained_hooked,
    process,
)
from headgraph.ingest.model.families import check_supported
from headgraph.ingest.model.tokenizer import HFTokenizer, Tokenizer


@dataclass(frozen=True)
class Architecture:
    """Shape of a model built from scratch: GPT-2-style unless ``options`` say otherwise.

    ``d_mlp=None`` builds an attention-only model. ``init_range`` is the standard
    deviation of the random weights (TransformerLens's ``0.8 / sqrt(d_model)``
    when None, which leaves attention nearly uniform: no head fires).
    ``options`` are further TransformerLens config fields, as ``(name, value)``
    pairs: rotary positions, RMSNorm, grouped-query attention, parallel blocks...
    """

    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_vocab: int
    n_ctx: int
    d_mlp: int | None = None
    act_fn: str = "gelu_new"
    init_range: float | None = None
    options: tuple[tuple[str, Any], ...] = ()


# Random weights scaled so that attention is peaked as in trained models: about
# half of all (head, destination) pairs fire, a busy case for the tracer.
_ROTARY = (("positional_embedding_type", "rotary"), ("rotary_base", 10000))
_LLAMA = (
    *_ROTARY, ("normalization_type", "RMS"), ("final_rms", True), ("gated_mlp", True),
    ("n_key_value_heads", 2),
)  # fmt: skip
PRESETS = {
    "gpt2-small": Architecture(12, 12, 768, 64, 50257, 1024, 3072, init_range=0.07),
    "tiny": Architecture(2, 4, 64, 16, 512, 64, None, init_range=0.3),
    # One small random model per family (see families.FAMILIES): same width, so their
    # costs compare; rotary_dim below d_head where the family rotates part of each head.
    "pythia": Architecture(
        3, 4, 64, 16, 512, 64, 256, "gelu", 0.3,
        (*_ROTARY, ("rotary_dim", 4), ("parallel_attn_mlp", True)),
    ),
    "gptj": Architecture(
        3, 4, 64, 16, 512, 64, 256, "gelu_new", 0.3,
        (*_ROTARY, ("rotary_dim", 8), ("rotary_adjacent_pairs", True),
         ("parallel_attn_mlp", True)),
    ),
    "llama": Architecture(3, 4, 64, 16, 512, 64, 128, "silu", 0.3, (*_LLAMA, ("rotary_dim", 16))),
    "gemma2": Architecture(
        3, 4, 64, 16, 512, 64, 128, "gelu_pytorch_tanh", 0.3,
        (*_LLAMA, ("rotary_dim", 16), ("use_normalization_before_and_after", True),
         ("attn_scores_soft_cap", 50.0), ("output_logits_soft_cap", 30.0)),
    ),
    "attn-only": Architecture(
        2, 4, 64, 16, 512, 64, None, init_range=0.3,
        options=(("positional_embedding_type", "shortformer"),),
    ),
}  # fmt: skip


def build_hooked(
    arch: Architecture,
    *,
    seed: int = 0,
    state_dict: Mapping[str, Tensor] | None = None,
    device: str = "cpu",
):
    """A ``HookedTransformer`` of this shape, unprocessed: random weights, or ``state_dict``.

    Use it to train or to check processing; trace through :func:`build_model`.
    """
    fields = asdict(arch)
    d_mlp, init_range = fields.pop("d_mlp"), fields.pop("init_range")
    options = {"normalization_type": "LN", **dict(fields.pop("options"))}
    hooked = new_hooked(
        **fields,
        **options,
        d_mlp=d_mlp,
        attn_only=d_mlp is None,
        seed=seed,
        initializer_range=init_range if init_range is not None else -1.0,
        device=device,
        default_prepend_bos=False,
    )
    return load_weights(hooked, state_dict) if state_dict is not None else hooked


def build_model(
    arch: Architecture,
    *,
    tokenizer: Tokenizer,
    seed: int = 0,
    state_dict: Mapping[str, Tensor] | None = None,
    device: str = "cpu",
    name: str = "built",
) -> Model:
    """Build a GPT-2-style model from its architecture, processed for tracing.

    Args:
        arch: Its shape.
        tokenizer: Its tokenizer (ids must fit ``arch.d_vocab``).
        seed: Seed of the random initialisation.
        state_dict: Weights to load instead (unprocessed, TransformerLens names).
        device: ``cpu`` or ``cuda``.
        name: Shown in messages and recorded on runs.
    """
    hooked = build_hooked(arch, seed=seed, state_dict=state_dict, device=device)
    return Model(process(hooked), tokenizer, name)


HUB_HELP = (
    'download it once where there is network (python -c "from transformers import '
    "AutoModelForCausalLM as M; M.from_pretrained('gpt2')\") or pass a local folder: "
    "--model /path/to/gpt2"
)


def load_model(spec: Any, *, device: str = "cpu", tokenizer: Tokenizer | None = None) -> Model:
    """Load a model by name or folder, or take a ``HookedTransformer`` of your own.

    - ``tiny-ioi``, ``tiny-ioi-rope``: the bundled attention-only models trained on IOI
      (GPT-2 style; Llama style: rotary, RMSNorm, grouped-query), offline.
    - ``random:PRESET``: random weights of a preset shape (``gpt2-small``,
      ``tiny``) with a word-level IOI tokenizer, for benchmarks and smoke
      tests; it has no circuit.
    - ``FILE.pt``: a tiny-ioi checkpoint written by ``headgraph train-tiny-ioi``.
    - a folder: a Hugging Face GPT-2-architecture model (``config.json``, the
      weights, the tokenizer files), read with no network.
    - any other name: a TransformerLens model name (``gpt2``), from the local
      Hugging Face cache or the hub. When the hub cannot be reached, the cache
      is used alone, so a missing model fails at once instead of after retries.
    - a ``HookedTransformer``: processed on a copy when it is not processed
      yet (see :meth:`Model.from_hooked`); a :class:`Model` is returned as is.

    Args:
        spec: The name, folder or model.
        device: ``cpu`` or ``cuda``.
        tokenizer: For a ``HookedTransformer`` without one of its own.

    Raises:
        ModelError: unknown preset, a folder that is not a model, or a model
            that cannot be had (with what to do).
    """
    if isinstance(spec, Model):
        return spec
    if not isinstance(spec, (str, Path)):
        if hasattr(spec, "cfg") and hasattr(spec, "run_with_cache"):
            return Model.from_hooked(spec, tokenizer=tokenizer)
        raise ModelError(
            f"cannot trace a {type(spec).__name__}: pass a model name, a folder, "
            "or a TransformerLens HookedTransformer"
        )
    spec = str(spec)
    model = _load_named(spec, device)
    path = Path(spec).expanduser()
    named = spec in ("tiny-ioi", "tiny-ioi-rope") or spec.startswith("random:")
    model.source = str(path.resolve()) if not named and path.exists() else spec
    return model


def _load_named(spec: str, device: str) -> Model:
    if spec in ("tiny-ioi", "tiny-ioi-rope"):
        from headgraph.ingest.tiny_ioi.training import CHECKPOINT, ROPE_CHECKPOINT, load

        return load(CHECKPOINT if spec == "tiny-ioi" else ROPE_CHECKPOINT, device=device)
    if spec.startswith("random:"):
        preset = spec.removeprefix("random:")
        if preset not in PRESETS:
            raise ModelError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
        from headgraph.ingest.tasks.ioi import word_tokenizer

        return build_model(PRESETS[preset], tokenizer=word_tokenizer(), device=device, name=spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_folder(path, device)
    if path.suffix == ".pt" and path.is_file():  # a tiny-ioi checkpoint (headgraph train-tiny-ioi)
        from headgraph.ingest.tiny_ioi.training import load

        return load(path, device=device)
    if spec.startswith((".", "/", "~")) or path.suffix in (".pt", ".json", ".safetensors", ".bin"):
        raise ModelError(
            f"no model folder at {spec}: give a folder holding config.json, "
            "the weights and the tokenizer files"
        )
    with _hub_or_cache() as offline:
        try:
            hooked = pretrained_hooked(spec, device=device)
        except OSError as error:
            where = "the hub cannot be reached" if offline else f"loading failed ({error})"
            raise ModelError(
                f"could not load {spec!r}: it is not in the local Hugging Face cache "
                f"and {where}; {HUB_HELP}"
            ) from error
        except ValueError as error:
            raise ModelError(f"could not load {spec!r}: {str(error)[:300]}") from error
    return Model(hooked, HFTokenizer(hooked.tokenizer), spec)


@contextlib.contextmanager
def _offline(on: bool) -> Iterator[None]:
    """Hugging Face's offline switch, on for the duration only (the process is left as it was)."""
    if not on:
        yield
        return
    import huggingface_hub.constants as hub

    saved_env, saved_constant = os.environ.get("HF_HUB_OFFLINE"), hub.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True  # read at import time otherwise
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = saved_constant
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


@contextlib.contextmanager
def _hub_or_cache() -> Iterator[bool]:
    """The cache alone when the hub is unreachable (no retries); yields whether offline.

    Without this, a machine with no network spends tens of seconds in retries
    before failing.
    """
    import socket

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline:
        try:
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
        except OSError:
            offline = True
    with _offline(offline):
        yield offline


# GPT-2 config fields that must be positive integers, and what each one is
_SIZES = {"n_layer": "layers", "n_head": "heads", "n_embd": "the model width",
          "n_positions": "the context", "vocab_size": "the vocabulary"}  # fmt: skip


def read_config(path: Path) -> dict[str, Any]:
    """A model folder's ``config.json``, checked before anything is loaded.

    Raises:
        ModelError: no config, not JSON (with the line), not an object, or GPT-2 sizes
            that are not positive integers.
    """
    file = path / "config.json"
    if not file.exists():
        raise ModelError(f"{path} is not a Hugging Face model folder: it has no config.json")
    try:
        config = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelError(f"{file}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ModelError(
            f"{file}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    if not isinstance(config, dict):
        raise ModelError(f"{file}: expected a JSON object of settings, got {type(config).__name__}")
    if config.get("model_type") == "gpt2":
        for field, what in _SIZES.items():
            value = config.get(field)
            if field in config and not (isinstance(value, int) and value > 0):
                raise ModelError(
                    f"{file}: {field} ({what}) must be a positive integer, got {value!r}"
                )
        heads, width = config.get("n_head", 12), config.get("n_embd", 768)
        if width % heads:
            raise ModelError(f"{file}: n_embd {width} is not divisible by n_head {heads}")
    return config


# model_type of the local folders TransformerLens converts and the method covers
FOLDER_TYPES = (
    *("gpt2", "gpt_neo", "gpt_neox", "gptj", "llama", "mistral", "qwen2", "opt"),
    *("gemma", "gemma2"),
)


def _load_folder(path: Path, device: str) -> Model:
    """A local Hugging Face folder, through TransformerLens's converter for its architecture.

    The architecture is checked from config.json before the weights are read.
    """
    config = read_config(path)
    model_type = config.get("model_type")
    if model_type not in FOLDER_TYPES:
        raise ModelError(
            f"{path}: model_type {model_type!r} cannot be loaded from a folder; local "
            f"folders may hold: {', '.join(FOLDER_TYPES)}"
        )
    cfg = None
    if model_type != "gpt2":
        from headgraph.ingest.model.adapter import folder_config

        with _offline(True):
            cfg = folder_config(str(path))
        check_supported(cfg, str(path))
    hf_model, tokenizer = _folder_weights(path)
    if cfg is not None:
        from headgraph.ingest.model.adapter import folder_hooked

        hooked = folder_hooked(
            str(path), cfg, hf_model=hf_model, tokenizer=tokenizer, device=device
        )
        return Model(hooked, HFTokenizer(tokenizer), str(path))
    return _gpt2_folder(path, hf_model, tokenizer, device)


def _folder_weights(path: Path):
    """A folder's Hugging Face model and tokenizer, read with no network."""
    with _offline(True):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            hf_model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
        except Exception as error:  # noqa: BLE001 - missing, truncated or foreign weight files
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ModelError(f"{path}: the weights cannot be read ({first})") from None
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, TypeError) as error:
            raise ModelError(
                f"{path}: no usable tokenizer files (vocab.json and merges.txt, or "
                f"tokenizer.json): {error}"
            ) from error
        if not tokenizer.encode("When Mary and John went to the store"):
            raise ModelError(
                f"{path}: its tokenizer has no vocabulary: put the tokenizer files "
                "(vocab.json and merges.txt, or tokenizer.json) beside config.json"
            )
    return hf_model, tokenizer


def _gpt2_folder(path: Path, hf_model, tokenizer, device: str) -> Model:
    """A GPT-2 folder: the config mapped here (transformers 5 configs lack n_ctx)."""
    c = hf_model.config  # transformers 5 configs lack n_ctx: n_positions is the context
    hooked = new_hooked(
        tokenizer=tokenizer,
        n_layers=c.n_layer,
        d_model=c.n_embd,
        n_heads=c.n_head,
        d_head=c.n_embd // c.n_head,
        d_mlp=c.n_inner or 4 * c.n_embd,
        d_vocab=c.vocab_size,
        n_ctx=c.n_positions,
        act_fn=c.activation_function,
        normalization_type="LN",
        eps=c.layer_norm_epsilon,
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=False,
        device=device,
    )
    hooked.load_and_process_state_dict(
        gpt2_weights(hf_model, hooked),
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
    )
    return Model(hooked, HFTokenizer(tokenizer), str(path))
