"""The original system's classifier: embedding -> LSTM -> linear -> sigmoid.

The decision is read at the last real token of each review, never at padding: sequences are packed,
so the LSTM's final state is the state after each review's own last token (and, for the backward
direction of a bidirectional LSTM, after its first). Packing also means a batch never pays for
padding.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from .hyperparameters import Hyperparameters
from .vocab import PAD


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.directions = 2 if bidirectional else 1
        self.dense = nn.Linear(hidden_dim * self.directions, 1)

    @classmethod
    def from_hyperparameters(cls, hp: Hyperparameters, vocab_size: int) -> "LSTMClassifier":
        return cls(vocab_size, hp.embedding_dim, hp.hidden_dim, hp.num_layers, hp.bidirectional,
                   hp.dropout)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits of shape [batch] for padded ``ids`` [batch, time] and ``lengths`` [batch] (>= 1)."""
        embedded = self.dropout(self.embedding(ids))
        if ids.shape[0] == 1 or bool((lengths == ids.shape[1]).all()):
            # Nothing to skip: packing would only add work (single requests take this path).
            _, (h_n, _) = self.lstm(embedded)
        else:
            packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
        # h_n: [layers * directions, batch, hidden]; the top layer's state(s) after the last real token
        last = torch.cat(list(h_n[-self.directions:]), dim=-1)
        return self.dense(self.dropout(last)).squeeze(-1)

    @torch.inference_mode()
    def predict_proba(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(ids, lengths))


def pad_batch(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists into a [batch, max_len] tensor and their lengths; an empty list becomes [PAD]."""
    seqs = [s if s else [PAD] for s in sequences]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    ids = torch.full((len(seqs), int(lengths.max())), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths
