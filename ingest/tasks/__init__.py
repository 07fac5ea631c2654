"""Prompts: the IOI generator (:mod:`.ioi`) and prompts read from a JSON Lines file
(:mod:`.prompts_file`), each with named token roles."""
