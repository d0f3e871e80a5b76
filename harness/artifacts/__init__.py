"""Everything written or read as a file: schemas and validation, atomic writing, payloads and their
envelopes, provenance (host facts), and loading artifacts given as input. `schemas` needs only
jsonschema, so third parties can validate result files without torch."""
