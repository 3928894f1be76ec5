"""The face pipeline: validate -> ingest -> train -> render -> composite (see README.md)."""
