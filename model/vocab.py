"""Token vocabulary: built from the training split only, stored as JSON (never pickle)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"


class Vocabulary:
    def __init__(self, tokens: Sequence[str]):
        if list(tokens[:2]) != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError("a vocabulary starts with <pad> (id 0) and <unk> (id 1)")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("vocabulary tokens must be unique")

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], size: int) -> "Vocabulary":
        """The ``size - 2`` most frequent tokens (ties broken alphabetically, so builds are stable)."""
        counts = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, size - 2)]
        return cls([PAD_TOKEN, UNK_TOKEN] + [t for t, _ in ranked])

    def encode(self, tokens: Sequence[str], max_len: int) -> list[int]:
        """Ids of the first ``max_len`` tokens; unknown tokens map to UNK. No padding here."""
        get = self.index.get
        return [get(t, UNK) for t in tokens[:max_len]]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"tokens": self.tokens}, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f"{path}: expected {{\"tokens\": [...]}}")
        return cls(data["tokens"])
