"""Deterministic data order and seeds: everything random in training is a function of the seed.

- `derive_seed(seed, *parts)`: a 63-bit seed for one purpose ("noise", step 17), stable across
  Python versions and platforms (SHA-256, not Python's salted `hash`).
- `DataOrder`: global batches of a split, a fresh permutation of the rows each epoch drawn from
  `derive_seed(seed, "data", epoch)`. The position in the stream is `DataPosition(epoch, offset)`,
  `offset` being how many rows of the epoch's permutation were consumed; a checkpoint stores it and
  a resumed run continues from it. An epoch ends when fewer than a full batch of rows is left.
- `shard(n, parts, index)`: the rows of a batch that one process (or one micro-batch) takes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

from edlm.errors import require


def derive_seed(seed: int, *parts) -> int:
    """A seed in [0, 2**63) determined by `seed` and the labels `parts`."""
    digest = hashlib.sha256("/".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def seeded_generator(seed: int, *parts) -> torch.Generator:
    """A CPU generator seeded with `derive_seed(seed, *parts)`."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


@dataclass(frozen=True)
class DataPosition:
    """Where the data stream stands: `offset` rows of epoch `epoch`'s permutation are consumed."""

    epoch: int = 0
    offset: int = 0


class DataOrder:
    """Global batches of `num_rows` rows in a seeded order, one permutation per epoch (drop-last)."""

    def __init__(self, num_rows: int, batch_size: int, seed: int) -> None:
        require(num_rows >= batch_size,
                f"the training split has {num_rows} sequences, fewer than train.batch_size={batch_size}; "
                "use a smaller batch or more data.")
        self.num_rows, self.batch_size, self.seed = num_rows, batch_size, seed
        self._epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> torch.Tensor:
        """Long[num_rows]: the order of epoch `epoch`."""
        if epoch != self._epoch:
            self._perm = torch.randperm(self.num_rows, generator=seeded_generator(self.seed, "data", epoch))
            self._epoch = epoch
        return self._perm

    def normalize(self, pos: DataPosition) -> DataPosition:
        """The same position, moved to the next epoch when no full batch is left in this one."""
        if pos.offset + self.batch_size > self.num_rows:
            return DataPosition(pos.epoch + 1, 0)
        return pos

    def batch(self, pos: DataPosition) -> tuple[torch.Tensor, DataPosition]:
        """(row indices Long[batch_size] of the global batch at `pos`, the position after it)."""
        pos = self.normalize(pos)
        rows = self.permutation(pos.epoch)[pos.offset:pos.offset + self.batch_size]
        return rows, DataPosition(pos.epoch, pos.offset + self.batch_size)


def shard(n: int, parts: int, index: int) -> slice:
    """Rows of part `index` when n rows are split into `parts` contiguous, nearly equal parts."""
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return slice(start, start + base + (1 if index < extra else 0))
