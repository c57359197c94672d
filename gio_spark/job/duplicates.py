"""Which pool texts duplicate a target text: the same after Unicode forms, case and white
space are normalised, or, for texts of at least ``MIN_EDIT_WORDS`` words, one word away (one word
replaced, added or dropped). Pure Python, used inside Spark tasks and by the benchmark.

One-word edits are found without comparing every pair (symmetric deletion): a text of L words
has L "deletions" (the text without word i). Two texts one word replaced apart share the
deletion at the same position; a text one word longer than another has a deletion equal to the
shorter one. Keys are stable 8-byte hashes, the same in every process.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Optional

MIN_EDIT_WORDS = 6  # shorter texts change too much with one word to call that a duplicate
MAX_EDIT_WORDS = 200  # longer texts: exact matches only (their deletions would cost too much)
EXACT = "exact_duplicate"
ONE_WORD = "one_word_edit"
NEAR = "near_embedding"


# characters that show nothing: a copy with one of them inside a word is still the same text
INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))


def normalised(text: Optional[str]) -> str:
    """The text as the guard compares it: Unicode compatibility forms folded (NFKC: full-width
    letters, ligatures, no-break spaces, composed and decomposed accents), invisible characters
    dropped, case folded."""
    plain = unicodedata.normalize("NFKC", (text or "").translate(INVISIBLE))
    return unicodedata.normalize("NFKC", plain.casefold())


def words(text: Optional[str]) -> list[str]:
    """The text's words, normalised, split on any white space."""
    return normalised(text).split()


def _key(parts: Iterable[str], tag: str = "") -> int:
    digest = hashlib.blake2b(("\x1f".join(parts) + "\x1e" + tag).encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _deletions(w: list[str]) -> list[tuple[int, int]]:
    """(position, key of the text without the word there) for each word."""
    return [(i, _key(w[:i] + w[i + 1:])) for i in range(len(w))]


@dataclass
class TargetTexts:
    """Keys of the target's texts of one side, to test pool texts against."""

    full: set = field(default_factory=set)  # whole normalised texts
    deleted: set = field(default_factory=set)  # texts without one word (long texts)
    at: set = field(default_factory=set)  # (position, text without that word) (long texts)

    def add(self, text: Optional[str]) -> None:
        w = words(text)
        if not w:
            return
        self.full.add(_key(w))
        if MIN_EDIT_WORDS <= len(w) <= MAX_EDIT_WORDS + 1:
            for i, key in _deletions(w):
                self.deleted.add(key)
                self.at.add(_key([str(i)], str(key)))

    def match(self, text: Optional[str]) -> Optional[str]:
        """EXACT or ONE_WORD when ``text`` duplicates a target text, else None."""
        w = words(text)
        if not w:
            return None
        full = _key(w)
        if full in self.full:
            return EXACT
        if len(w) + 1 >= MIN_EDIT_WORDS and len(w) <= MAX_EDIT_WORDS and full in self.deleted:
            return ONE_WORD  # a target text has one word more
        if MIN_EDIT_WORDS <= len(w) <= MAX_EDIT_WORDS + 1:
            for i, key in _deletions(w):
                if (len(w) > MIN_EDIT_WORDS and key in self.full) or _key([str(i)], str(key)) in self.at:
                    return ONE_WORD  # one word more than a target text, or one replaced
        return None
