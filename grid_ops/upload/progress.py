"""How an upload reports its progress: stages (hashing, checking, uploading, completing) and bytes sent.

``Progress`` does nothing; the CLI passes one that draws a bar on a terminal or prints plain lines."""

from __future__ import annotations


class Progress:
    """Callbacks of an upload; ``advance`` is called from the sending threads."""

    def stage(self, text: str) -> None:
        """A new step began (e.g. ``"hashing 1000 files"``)."""

    def start(self, total_bytes: int, done_bytes: int) -> None:
        """Sending begins: ``total_bytes`` to send in all, ``done_bytes`` of them sent by an earlier attempt."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more have arrived."""

    def finish(self, text: str) -> None:
        """The upload ended (``text`` says how)."""
