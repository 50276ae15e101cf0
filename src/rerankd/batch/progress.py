"""What a batch run shows while it works (a tqdm bar on stderr: pairs, rate, ETA) and at the end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress", "Tally"]


@dataclass
class Tally:
    """What a run did."""

    jobs: int = 0  # written this run
    skipped: int = 0  # already in the output (resumed)
    failed: int = 0
    bad_lines: int = 0
    pairs: int = 0  # of the jobs written this run
    tokens: int = 0
    seconds: float = 0.0

    @property
    def pairs_per_second(self) -> float:
        return self.pairs / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.bad_lines

    def summary(self) -> str:
        return (
            f"{self.jobs} jobs ranked, {self.pairs} pairs in {self.seconds:.1f}s "
            f"({self.pairs_per_second:.1f} pairs/s), {self.tokens} tokens; {self.skipped} already in the "
            f"output, {self.failed} failed, {self.bad_lines} bad lines"
        )


class Progress:
    """A bar over the pairs still to score, with jobs done and failed alongside."""

    def __init__(self, pairs: int, jobs: int, *, enabled: bool, stream: TextIO) -> None:
        self._jobs = jobs
        self._stream = stream
        self._done = 0
        self._failed = 0
        self._bar = tqdm(
            total=pairs,
            unit="pair",
            unit_scale=True,
            dynamic_ncols=True,
            disable=not enabled,
            file=stream,
            desc="rerank",
        )

    def advance(self, pairs: int, *, failed: bool = False) -> None:
        self._done += 1
        self._failed += failed
        postfix = f"jobs {self._done}/{self._jobs}" + (f", {self._failed} failed" if self._failed else "")
        self._bar.set_postfix_str(postfix, refresh=False)
        self._bar.update(pairs)

    def write(self, message: str) -> None:
        """A line above the bar (tqdm keeps the bar below it)."""
        tqdm.write(message, file=self._stream)

    def close(self) -> None:
        self._bar.close()
