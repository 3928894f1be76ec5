"""Words and phones of a sentence under the pocketsphinx (CMU) dictionary."""

from __future__ import annotations

import functools
import os
import re

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def words(text: str) -> list[str]:
    """Lower-case words, punctuation dropped ("Phil's, etc." -> ["phil's", "etc"])."""
    return _WORD.findall(text.lower().replace("-", " "))


@functools.cache
def dictionary() -> dict[str, list[str]]:
    """The CMU dictionary that ships with pocketsphinx: word -> phones (first pronunciation)."""
    import pocketsphinx

    path = os.path.join(pocketsphinx.get_model_path(), "en-us", "cmudict-en-us.dict")
    entries: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, *phones = line.split()
            if "(" not in word and phones:
                entries[word] = phones
    return entries


def pronounce(word: str) -> list[str] | None:
    """Phones of ``word``: the dictionary, else a possessive or a two-word compound of it."""
    lexicon = dictionary()
    if word in lexicon:
        return lexicon[word]
    if word.endswith("'s") and word[:-2] in lexicon:
        return [*lexicon[word[:-2]], "Z"]
    for cut in range(2, len(word) - 1):
        head, tail = word[:cut], word[cut:]
        if head in lexicon and tail in lexicon:
            return [*lexicon[head], *lexicon[tail]]
    return None


def phones(text: str) -> list[str]:
    """The sentence as CMU phones; words we cannot pronounce are skipped."""
    return [p for w in words(text) for p in pronounce(w) or []]


def known(text: str) -> bool:
    """True when every word can be pronounced (needed for ASR checks and alignment)."""
    return all(pronounce(w) is not None for w in words(text))
