"""Script moderation (R18): each policy category refuses with its name; ordinary scripts pass."""

from __future__ import annotations

import pytest

from compliance.moderation import POLICY, moderate, normalise

ORDINARY = [
    "Welcome to our spring sale: twenty percent off all running shoes until Sunday!",
    "Hi, I'm Ada. Today I'll show you three ways to use our blender for smoothies.",
    "Thanks for joining the live stream; ask your questions in the chat.",
    "Our new laptop has a 14-inch screen, 16 GB of memory and a 12 hour battery.",
    "Elections are on Sunday; our stores open at noon that day.",
]


@pytest.mark.parametrize("script", ORDINARY)
def test_ordinary_product_scripts_pass(script):
    assert moderate(script).allowed


@pytest.mark.parametrize(
    ("script", "category"),
    [
        ("We should deport all immigrants tonight.", "hate"),
        ("Click the link for free p0rn videos", "sexual"),
        ("Send me your Bitcoin and I will double your money!", "fraud"),
        ("Your bank account has been suspended, tell me your PIN.", "fraud"),
        ("V O T E for Smith? No: VOTE  for   Smith on Tuesday!!!", "political"),
        ("Hello, I am the real Taylor Swift and this video is not AI.", "impersonation"),
        ("Meet with a 12 year old tonight", "minors"),
    ],
)
def test_each_policy_category_is_refused_with_its_name(script, category):
    verdict = moderate(script)
    assert (verdict.allowed, verdict.category) == (False, category)
    assert verdict.matched and verdict.matched in normalise(script)


def test_normalising_undoes_disguises():
    assert normalise("V0TE   f0r ＳＭＩＴＨ!!!") == "vote for smith"
    assert normalise("Sooooo cool") == "soo cool"
    assert normalise("12 year old") == "12 year old"  # real numbers stay numbers


def test_every_category_has_rules():
    assert set(POLICY) == {"hate", "sexual", "minors", "fraud", "political", "impersonation"}
