"""The studio: avatars, their training and their renders (service + RQ tasks)."""
