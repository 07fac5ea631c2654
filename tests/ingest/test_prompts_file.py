import json

import pytest

from headgraph.ingest import tiny_ioi
from headgraph.ingest.tasks.prompts_file import PromptsFileError, read_prompts

TOKENIZER = tiny_ioi.tokenizer()
TEXT = "Then, Ashley and John went to the store. John gave a ring to"  # 15 tokens


def write(tmp_path, *lines):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def good(pid="p1", roles=None):
    return json.dumps({"id": pid, "text": TEXT, "roles": roles or {"IO": 2, "S1": 4, "END": 14}})


def test_a_good_file_gives_tokenised_prompts(tmp_path):
    prompts = read_prompts(write(tmp_path, good("a"), "", good("b")), TOKENIZER)
    assert [p.id for p in prompts] == ["a", "b"]
    assert prompts[0].tokens == tuple(TOKENIZER.encode(TEXT))
    assert TOKENIZER.decode([prompts[0].tokens[2]]) == "Ashley"
    assert TOKENIZER.decode([prompts[0].tokens[4]]) == "John"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        ('["a list"]', "line 2: expected an object"),
        ('{"id": "q", "text": "x"}', "line 2: missing roles"),
        ('{"id": "", "text": "x", "roles": {}}', "line 2: id must be a non-empty string"),
        (good("p1"), "line 2: id 'p1' is already used on line 1"),
        ('{"id": "q", "text": "Mary", "roles": {"END": "3"}}', "line 2: roles must map role names"),
        (good("q", {"END": 15}), "line 2: role END is at token 15, but the text has 15 tokens"),
        (
            '{"id": "q", "text": "Zebra gave", "roles": {"END": 1}}',
            "line 2: the model's tokenizer cannot encode it",
        ),
    ],
)
def test_each_bad_line_is_named_with_its_problem(tmp_path, line, message):
    with pytest.raises(PromptsFileError, match=message):
        read_prompts(write(tmp_path, good("p1"), line), TOKENIZER)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(PromptsFileError, match="no such file"):
        read_prompts(tmp_path / "none.jsonl", TOKENIZER)
    with pytest.raises(PromptsFileError, match="no prompts"):
        read_prompts(write(tmp_path, ""), TOKENIZER)
