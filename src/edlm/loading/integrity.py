"""Byte size and sha256 of each tensor file in a checkpoint or pretrained directory, recorded beside it.

Format version 2 (training checkpoints and pretrained directories alike) records every tensor file as
`{"bytes": N, "sha256": HEX}` in its JSON file (state.json, edlm_config.json) and loading checks both, so
a file that was cut short or had bytes flipped in place is refused before it is read. Version 1 recorded
the byte size alone (an integer), which is still checked, so older runs load as before.
"""

from __future__ import annotations

from pathlib import Path

from edlm.data.files import file_digest
from edlm.errors import require

HASH = "sha256"


def file_record(path: Path) -> dict:
    """{"bytes": size, "sha256": hex digest} of a file (read in blocks, never whole into memory)."""
    return {"bytes": Path(path).stat().st_size, HASH: file_digest(path, HASH)}


def check_file(file: Path, record, *, version: int, listed_in: Path, fix: str) -> None:
    """EdlmError (one sentence naming `file` and ending in `fix`) unless the file matches its `record`.

    record: what `listed_in` holds for the file: {"bytes", "sha256"} in version 2, the byte size in
    version 1 (None there, for old pretrained directories that recorded nothing, skips the check).
    """
    file = Path(file)
    require(file.is_file(), f"{file} is missing; {fix}.")
    if version < 2:
        require(record is None or isinstance(record, int), f"{listed_in} records {record!r} as the size of "
                f"{file.name}, not a byte count; the directory is corrupt, {fix}.")
        expected = record
    else:
        require(isinstance(record, dict) and isinstance(record.get("bytes"), int)
                and isinstance(record.get(HASH), str),
                f"{listed_in} has no byte size and {HASH} for {file.name}; the directory is corrupt, {fix}.")
        expected = record["bytes"]
    size = file.stat().st_size
    require(expected is None or size == expected,
            f"{file} has {size} bytes instead of the {expected} recorded in {listed_in.name} (truncated or corrupt); "
            f"{fix}.")
    if version >= 2:
        digest = file_digest(file, HASH)
        require(digest == record[HASH], f"{file} is corrupt: its {HASH} is {digest[:16]}..., not the "
                f"{record[HASH][:16]}... recorded in {listed_in.name}; {fix}.")
