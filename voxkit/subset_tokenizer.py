"""A compact vocabulary carved out of a large tokenizer, for small models.

A small recogniser cannot afford Tekken's 131k-row embedding (33M parameters at width 256), yet it
should speak Tekken so that its text is tokenised exactly as the published models do. The subset
keeps the special slots (ids 0..35, unchanged), the 256 byte tokens, and the pieces a corpus
actually uses; any other piece is spelled with its bytes, so every text stays encodable.

New ids: ``0..35`` specials, ``36..291`` bytes 0..255, then the kept pieces in the stored order.
Stored in a model folder as ``vocab_subset.json``: ``{"base": "tekken", "ids": [base ids ...]}``.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from voxkit.errors import CheckpointError
from voxkit.tokenizer import Tokenizer

N_SPECIAL = 36
SUBSET_FILE = "vocab_subset.json"


class SubsetTokenizer:
    def __init__(self, base: Tokenizer, piece_ids: Sequence[int], byte_offset: int = 1000) -> None:
        """piece_ids: base ids of the kept non-byte pieces; byte b is base id ``byte_offset + b``."""
        self.base = base
        self.byte_offset = byte_offset
        self.base_ids: list[int] = list(range(N_SPECIAL)) + [byte_offset + b for b in range(256)] + list(piece_ids)
        self.to_new: dict[int, int] = {b: i for i, b in enumerate(self.base_ids)}
        if len(self.to_new) != len(self.base_ids):
            raise CheckpointError("vocabulary subset repeats ids")

    @property
    def vocab_size(self) -> int:
        return len(self.base_ids)

    @property
    def bos_id(self) -> int:
        return self.base.bos_id

    @property
    def eos_id(self) -> int:
        return self.base.eos_id

    def _map(self, base_ids: Iterable[int]) -> list[int]:
        out: list[int] = []
        for b in base_ids:
            new = self.to_new.get(b)
            if new is not None:
                out.append(new)
            else:  # spell the piece with byte tokens
                out.extend(N_SPECIAL + byte for byte in self.base.token_bytes(b))
        return out

    def encode(self, text: str, *, bos: bool = True, eos: bool = False) -> list[int]:
        return self._map(self.base.encode(text, bos=bos, eos=eos))

    def token_bytes(self, token_id: int) -> bytes:
        return self.base.token_bytes(self.base_ids[token_id])

    def decode(self, ids: Sequence[int]) -> str:
        data = b"".join(self.token_bytes(i) for i in ids if i >= N_SPECIAL)
        return data.decode("utf-8", errors="replace")

    @classmethod
    def from_texts(cls, base: Tokenizer, texts: Iterable[str], max_pieces: int, min_count: int = 2) -> SubsetTokenizer:
        """Keep the ``max_pieces`` most frequent non-special, non-byte pieces of ``texts``."""
        counts: Counter[int] = Counter()
        for text in texts:
            counts.update(base.encode(text, bos=False))
        specials_and_bytes = set(range(N_SPECIAL)) | set(range(1000, 1256))
        ranked = [i for i, c in counts.most_common() if c >= min_count and i not in specials_and_bytes and i >= 1000]
        return cls(base, ranked[:max_pieces])

    def save(self, folder: str | os.PathLike[str]) -> None:
        data = {"base": "tekken", "byte_offset": self.byte_offset, "ids": self.base_ids[N_SPECIAL + 256 :]}
        (Path(folder) / SUBSET_FILE).write_text(json.dumps(data) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: str | os.PathLike[str], base: Tokenizer) -> SubsetTokenizer:
        try:
            data = json.loads((Path(folder) / SUBSET_FILE).read_text(encoding="utf-8"))
            return cls(base, [int(i) for i in data["ids"]], int(data.get("byte_offset", 1000)))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"cannot read {Path(folder) / SUBSET_FILE}: {err}") from None


def load_folder_tokenizer(folder: str | os.PathLike[str]) -> Tokenizer:
    """A model folder's tokenizer: its vocabulary subset over Tekken if it has one, else the
    folder rule of :func:`voxkit.tokenizer.load_tokenizer`."""
    from voxkit.tokenizer import TekkenTokenizer, load_tokenizer

    if (Path(folder) / SUBSET_FILE).exists():
        return SubsetTokenizer.load(folder, TekkenTokenizer.shipped())
    return load_tokenizer(folder)
