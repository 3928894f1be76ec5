"""Script moderation before synthesis (COMPLIANCE.md R18).

A script is refused when it falls into one of the policy categories below. The check is
a curated blocklist of phrases per category, matched on a normalised form of the text
(Unicode NFKC, case-folded, common digit-for-letter swaps undone, punctuation and
repeated letters collapsed), so "V0TE   for" and "vote for" are the same. It is
deliberately conservative and explainable: each refusal names its category and the
phrase that triggered it, and the verdict is written to the audit log by the caller.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_GROUPS = r"(jews|muslims|christians|blacks|whites|gays|immigrants|women)"

# category -> phrases (regular expressions over the normalised text, whole words)
POLICY: dict[str, tuple[str, ...]] = {
    "hate": (
        rf"(kill|exterminate|deport|gas) (all|the) {_GROUPS}",
        rf"{_GROUPS} are (vermin|animals|subhuman|parasites)",
        r"white (power|supremacy)",
        r"heil hitler",
        r"race war",
    ),
    "sexual": (
        r"porn\w*",
        r"nude\w*",
        r"naked",
        r"sex (video|tape|chat)",
        r"onlyfans",
        r"explicit sex\w*",
        r"blowjob",
    ),
    "minors": (
        r"(child|kid|underage|teen|minor)s? (porn\w*|nudes?|sex\w*)",
        r"(sex|date|meet) (with )?(a )?(child|children|minor|minors|kid|kids|\d{1,2} year old)",
        r"loli\w*",
    ),
    "fraud": (
        r"(send|transfer|wire) (me )?(your )?(bitcoin|crypto|btc|eth|money|gift cards?)",
        r"guaranteed (returns?|profits?|income)",
        r"double your (money|bitcoin|crypto|investment)",
        r"(your|the) (bank )?(account|card) (has been|is) (locked|suspended|compromised)",
        r"(share|give|tell) (me )?(your )?(password|pin|one time code|otp|seed phrase)",
        r"giveaway send",
        r"act now before (it s|its) too late",
    ),
    "political": (
        r"vote (for|against) \w+",
        r"(re)?elect \w+",
        r"don t vote",
        r"(support|join) (the|my) campaign",
        r"(donate|contribute) to (the|my|our) campaign",
        r"(president|senator|governor|mayor|candidate|minister) \w+ (says|endorses|supports)",
    ),
    "impersonation": (
        r"i am (the )?(real|official|actual) \w+",
        r"this is (really|actually) (president|senator|elon|taylor)\w*",
        r"i am (president|senator|governor|prime minister|the ceo of) \w+",
        r"(not|isn t) (ai|an ai|a deepfake|generated|synthetic)",
        r"this (video|message) is (real|authentic|not fake)",
    ),
}

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
_COMPILED = {
    category: [re.compile(rf"\b{pattern}\b") for pattern in patterns]
    for category, patterns in POLICY.items()
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str | None = None  # the policy category of a refusal
    matched: str | None = None  # the normalised phrase that triggered it


def normalise(text: str) -> str:
    """Case-folded ASCII-ish words separated by single spaces (see the module doc)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    words = []
    for word in re.split(r"[^\w@$]+", text):
        if not word:
            continue
        if not word.isdigit():  # keep real numbers ("12 year old"), undo "v0te"
            word = word.translate(_LEET)
        words.append(re.sub(r"(.)\1{2,}", r"\1\1", word))  # "sooooo" -> "soo"
    return " ".join(w.replace("_", " ") for w in words)


def moderate(script: str) -> Verdict:
    """The verdict on a script: the first policy category it falls into, if any."""
    text = normalise(script)
    for category, patterns in _COMPILED.items():
        for pattern in patterns:
            found = pattern.search(text)
            if found:
                return Verdict(False, category, found.group(0))
    return Verdict(True)
