"""Prompts from a JSON Lines file, checked whole before any work starts.

One object per line::

    {"id": "p1", "text": "When Mary and John went to the store, John gave a drink to",
     "roles": {"IO": 1, "S1": 3, "S2": 9, "END": 13}}

Role values are token indices of the text as the model's tokenizer splits it,
without a BOS token. Optional ``answer`` and ``wrong`` give the token the
model should predict after the text and a competing one (IOI: the subject),
each as text that is one token for the model's tokenizer (mind the leading
space: ``" Mary"``) or as a token id; prompts with answers are traced from
the model's own prediction. Blank lines are skipped. Every problem is reported
with its line number.
"""

from __future__ import annotations

import json
from pathlib import Path

from headgraph.errors import InputError
from headgraph.ingest.core.records import Prompt
from headgraph.ingest.model.tokenizer import Tokenizer


class PromptsFileError(InputError):
    """A prompts file that cannot be used, with the line and the problem."""


def read_prompts(path: str | Path, tokenizer: Tokenizer) -> list[Prompt]:
    """Read and check every line of a prompts file.

    Raises:
        PromptsFileError: the file is missing or empty, or a line is not a valid
            prompt (the message names the line and what to fix).
    """
    path = Path(path)
    if not path.is_file():
        raise PromptsFileError(f"{path}: no such file")
    prompts: list[Prompt] = []
    first_seen: dict[str, int] = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PromptsFileError(
                f"{where}: not UTF-8 text (byte {error.start + 1}); save the file as UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise PromptsFileError(f"{where}: not valid JSON ({error.msg})") from None
        except RecursionError:
            raise PromptsFileError(f"{where}: JSON nested too deeply for a prompt") from None
        if not isinstance(item, dict):
            raise PromptsFileError(f"{where}: expected an object with id, text and roles")
        missing = [k for k in ("id", "text", "roles") if k not in item]
        if missing:
            raise PromptsFileError(f"{where}: missing {', '.join(missing)}")
        pid, text, roles = item["id"], item["text"], item["roles"]
        if not isinstance(pid, str) or not pid:
            raise PromptsFileError(f"{where}: id must be a non-empty string")
        if pid in first_seen:
            raise PromptsFileError(f"{where}: id {pid!r} is already used on line {first_seen[pid]}")
        if not isinstance(text, str) or not text:
            raise PromptsFileError(f"{where}: text must be a non-empty string")
        if not isinstance(roles, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in roles.items()
        ):
            raise PromptsFileError(f"{where}: roles must map role names to token indices")
        try:
            tokens = tokenizer.encode(text)
        except ValueError as error:
            raise PromptsFileError(
                f"{where}: the model's tokenizer cannot encode it: {error}"
            ) from None
        for role, index in roles.items():
            if not 0 <= index < len(tokens):
                raise PromptsFileError(
                    f"{where}: role {role} is at token {index}, but the text has {len(tokens)} "
                    f"tokens (0..{len(tokens) - 1}) as the model's tokenizer splits it"
                )
        answer, wrong = (
            _token(item.get(key), key, where, tokenizer) for key in ("answer", "wrong")
        )
        if wrong is not None and answer is None:
            raise PromptsFileError(f"{where}: wrong needs an answer beside it")
        first_seen[pid] = number
        prompts.append(Prompt(pid, text, tuple(tokens), dict(roles), answer, wrong))
    if not prompts:
        raise PromptsFileError(f"{path}: no prompts in the file")
    return prompts


def _token(value, key: str, where: str, tokenizer: Tokenizer) -> int | None:
    """An answer given as one token's text or as a token id (None when absent)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise PromptsFileError(f"{where}: {key} token id {value} is negative")
        return value
    if not isinstance(value, str) or not value:
        raise PromptsFileError(f"{where}: {key} must be a token's text or a token id")
    try:
        ids = tokenizer.encode(value)
    except ValueError as error:
        raise PromptsFileError(
            f"{where}: {key} {value!r}: the tokenizer cannot encode it: {error}"
        ) from None
    if len(ids) != 1:
        pieces = [tokenizer.decode([i]) for i in ids]
        raise PromptsFileError(
            f"{where}: {key} {value!r} is {len(ids)} tokens for this tokenizer {pieces}: give "
            "one token (mind the leading space) or a token id"
        )
    return ids[0]
