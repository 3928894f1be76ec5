"""Identity verification and the depicted person's own, live, revocable consent (R1-R7)."""
