"""Indirect object identification prompts (Wang et al. 2022, METHOD.md section 8).

"Then, Mary and John went to the store. John gave a drink to" -> " Mary".
The first clause names the indirect object (IO) and the subject (S1); the
second repeats the subject (S2) and ends at END, the token before the answer.
BABA templates put S first ("Then, John and Mary ..."), ABBA swaps the
first-clause names; "mixed" draws each order with probability 1/2. Corrupted
(ABC) prompts replace S1, IO and S2 by three distinct names, positions kept.

Roles are found by tokenising the text, so they are right for any tokenizer;
every name must be a single token (with its leading space) for it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence  # noqa: F401 (pdoc: Prompt.roles)
from dataclasses import dataclass, replace

from headgraph.errors import InputError
from headgraph.ingest.core.records import Prompt
from headgraph.ingest.model.tokenizer import Tokenizer, WordTokenizer

# fmt: off
NAMES = (
    "Michael", "Christopher", "Jessica", "Matthew", "Ashley", "Jennifer", "Joshua", "Amanda",
    "Daniel", "David", "James", "Robert", "John", "Joseph", "Andrew", "Ryan",
    "Brandon", "Jason", "Justin", "Sarah", "William", "Jonathan", "Stephanie", "Brian",
    "Nicole", "Nicholas", "Anthony", "Heather", "Eric", "Elizabeth", "Adam", "Megan",
    "Melissa", "Kevin", "Steven", "Thomas", "Timothy", "Christina", "Kyle", "Rachel",
    "Laura", "Lauren", "Amber", "Brittany", "Danielle", "Richard", "Kimberly", "Jeffrey",
    "Amy", "Crystal", "Michelle", "Tiffany", "Jeremy", "Benjamin", "Mark", "Emily",
    "Aaron", "Charles", "Rebecca", "Jacob", "Stephen", "Patrick", "Sean", "Erin",
    "Jamie", "Kelly", "Samantha", "Nathan", "Sara", "Dustin", "Paul", "Angela",
    "Tyler", "Scott", "Katherine", "Andrea", "Gregory", "Erica", "Mary", "Travis",
    "Lisa", "Kenneth", "Bryan", "Lindsey", "Kristen", "Jose", "Alexander", "Jesse",
    "Katie", "Lindsay", "Shannon", "Vanessa", "Courtney", "Christine", "Alicia", "Cody",
    "Allison", "Bradley", "Samuel",
)
# fmt: on
PLACES = ("store", "garden", "restaurant", "school", "hospital", "office", "house", "station")
OBJECTS = ("ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack")

# BABA order: {S} is the subject (named twice), {IO} the indirect object.
TEMPLATES = (
    "Then, {S} and {IO} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {S} and {IO} had a lot of fun at the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {S} and {IO} were working at the {PLACE}. {S} decided to give a {OBJECT} to",
    "Then, {S} and {IO} were thinking about going to the {PLACE}. {S} wanted to give a {OBJECT} to",
    "Then, {S} and {IO} had a long argument, and afterwards {S} said to",
    "After {S} and {IO} went to the {PLACE}, {S} gave a {OBJECT} to",
    "When {S} and {IO} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "When {S} and {IO} got a {OBJECT} at the {PLACE}, {S} decided to give the {OBJECT} to",
    "While {S} and {IO} were working at the {PLACE}, {S} gave a {OBJECT} to",
    "While {S} and {IO} were commuting to the {PLACE}, {S} gave a {OBJECT} to",
    "After the lunch, {S} and {IO} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Afterwards, {S} and {IO} went to the {PLACE}. Then, {S} gave a {OBJECT} to",
    "Then, {S} and {IO} had a long argument. Afterwards {S} said to",
    "The {PLACE} {S} and {IO} went to had a {OBJECT}. {S} gave it to",
    "Friends {S} and {IO} found a {OBJECT} at the {PLACE}. {S} gave it to",
)
ROLES = ("IO", "S1", "S1+1", "S2", "END", "IO+1")
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class IOIPrompt(Prompt):
    """An IOI prompt: a :class:`Prompt` whose answer is IO and wrong answer S.

    Attributes:
        io_token, s_token: Token ids of the right answer (IO) and of the subject (S).
        template: Index into ``TEMPLATES``.
        order: ``"BABA"`` or ``"ABBA"``.
    """

    io_token: int = -1
    s_token: int = -1
    template: int = -1
    order: str = "BABA"


def vocabulary() -> list[str]:
    """Every word and mark of the IOI prompts (for a :class:`WordTokenizer`)."""
    words = [w for t in TEMPLATES for w in re.findall(r"\w+|[^\w\s{}]", _SLOT.sub(" ", t))]
    return [*dict.fromkeys([*words, *PLACES, *OBJECTS, *NAMES])]


def single_token_names(names: Sequence[str], tokenizer: Tokenizer) -> list[str]:
    """The names that are one token (with a leading space) for ``tokenizer``."""

    def one_token(name: str) -> bool:
        try:
            return len(tokenizer.encode(" " + name)) == 1
        except ValueError:  # a word-level tokenizer without the name
            return False

    return [n for n in names if one_token(n)]


def check_names(names: Sequence[str], tokenizer: Tokenizer) -> None:
    """Raise ValueError listing the names that are not a single token, or too few names."""
    bad = sorted(set(names) - set(single_token_names(names, tokenizer)))
    if bad:
        raise InputError(
            f"IOI names must be single tokens for this tokenizer; these are not: {', '.join(bad)}. "
            "Choose other names."
        )
    if len(set(names)) < 3:
        raise InputError(
            f"IOI needs at least 3 distinct names that the tokenizer encodes as one token "
            f"each; it has {sorted(set(names)) or 'none'} (is this the model's own tokenizer?)"
        )


def render(
    template: str, fills: dict[str, str], tokenizer: Tokenizer
) -> tuple[list[int], str, dict[str, int]]:
    """Fill a template, tokenise it and find the token index of each name.

    Returns:
        The token ids, the text, and ``{role: index}`` for ``IO``, ``S1`` and
        ``S2`` (the first and second ``{S}``).

    Raises:
        ValueError: the tokenizer does not split the text at a name's boundary,
            or a name is not one token there.
    """
    text, found, subjects = "", {}, 0
    for i, piece in enumerate(_SLOT.split(template)):
        if i % 2 == 0:
            text += piece
            continue
        if piece in ("S", "IO"):
            subjects += piece == "S"
            role = f"S{subjects}" if piece == "S" else "IO"
            found[role] = tokenizer.encode(text.rstrip(" ")) if text.strip() else []
        text += fills[piece]
    tokens = tokenizer.encode(text)
    positions = {}
    for role, prefix in found.items():
        name = fills["S" if role.startswith("S") else "IO"]
        expected = prefix + tokenizer.encode(" " + name)
        if len(expected) != len(prefix) + 1 or tokens[: len(expected)] != expected:
            raise InputError(f"the tokenizer does not give {name!r} one token in {text!r}")
        positions[role] = len(prefix)
    return tokens, text, positions


def ioi_prompts(
    n: int,
    *,
    tokenizer: Tokenizer,
    seed: int = 0,
    order: str = "mixed",
    names: Sequence[str] | None = None,
    templates: Sequence[str] = TEMPLATES,
    pairs: Sequence[tuple[str, str]] | None = None,
    id_prefix: str = "ioi",
) -> list[IOIPrompt]:
    """Generate ``n`` IOI prompts with roles IO, S1, S1+1, S2, END and IO+1.

    Args:
        n: How many.
        tokenizer: The model's tokenizer.
        seed: Seed of the draw (same seed, same prompts).
        order: ``"BABA"``, ``"ABBA"`` or ``"mixed"``.
        names: Candidate names; each must be one token. By default, those of
            ``NAMES`` that are one token for this tokenizer.
        templates: BABA templates with ``{S}``, ``{IO}``, ``{PLACE}``, ``{OBJECT}``
            slots, and optionally ``{D}``: a third, distractor name.
        pairs: Allowed ``(IO, S)`` name pairs (default: any two names), so that
            pairs can be held out of training.
        id_prefix: Prompt ids are ``{id_prefix}-{i}``.

    Raises:
        ValueError: bad order, names that are not single tokens, fewer than 3 names.
    """
    if order not in ("BABA", "ABBA", "mixed"):
        raise InputError(f"order must be BABA, ABBA or mixed, got {order!r}")
    pool = list(names) if names is not None else single_token_names(NAMES, tokenizer)
    check_names(pool, tokenizer)
    rng = random.Random(seed)
    prompts = []
    for i in range(n):
        t = rng.randrange(len(templates))
        io, s, distractor = rng.sample(pool, 3)
        if pairs is not None:
            io, s = rng.choice(pairs)
            distractor = rng.choice([n for n in pool if n not in (io, s)])
        this_order = order if order != "mixed" else rng.choice(("BABA", "ABBA"))
        template = templates[t]
        if this_order == "ABBA":  # swap the first-clause names only
            template = template.replace("{S} and {IO}", "{IO} and {S}", 1)
        fills = {
            "S": s,
            "IO": io,
            "D": distractor,
            "PLACE": rng.choice(PLACES),
            "OBJECT": rng.choice(OBJECTS),
        }
        tokens, text, pos = render(template, fills, tokenizer)
        roles = {
            "IO": pos["IO"],
            "S1": pos["S1"],
            "S1+1": pos["S1"] + 1,
            "S2": pos["S2"],
            "END": len(tokens) - 1,
            "IO+1": pos["IO"] + 1,
        }
        prompts.append(
            IOIPrompt(
                id=f"{id_prefix}-{i}",
                text=text,
                tokens=tuple(tokens),
                roles=roles,
                answer=tokenizer.encode(" " + io)[0],
                wrong=tokenizer.encode(" " + s)[0],
                io_token=tokenizer.encode(" " + io)[0],
                s_token=tokenizer.encode(" " + s)[0],
                template=t,
                order=this_order,
            )
        )
    return prompts


def corrupt(
    prompts: Sequence[IOIPrompt],
    *,
    tokenizer: Tokenizer,
    seed: int = 1,
    names: Sequence[str] | None = None,
) -> list[IOIPrompt]:
    """ABC versions: S1, IO and S2 replaced by three distinct names, other tokens and roles kept."""
    pool = list(names) if names is not None else single_token_names(NAMES, tokenizer)
    check_names(pool, tokenizer)
    rng = random.Random(seed)
    out = []
    for p in prompts:
        a, b, c = rng.sample(pool, 3)
        tokens = list(p.tokens)
        for role, name in (("S1", a), ("IO", b), ("S2", c)):
            tokens[p.roles[role]] = tokenizer.encode(" " + name)[0]
        out.append(
            replace(p, id=f"{p.id}-abc", text=tokenizer.decode(tokens), tokens=tuple(tokens))
        )
    return out


def word_tokenizer() -> WordTokenizer:
    """A word-level tokenizer covering every IOI prompt."""
    return WordTokenizer(vocabulary())
