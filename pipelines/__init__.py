"""agencyml's logic, in wings: one package per concern, each a newcomer's question ("where do I
change how batches are published?" -> scoring). A wing imports only itself, the wings below it
in WINGS and the shared modules; the shared modules import only each other. No two files import
each other, directly or around a loop (tests/unit/test_layout.py checks both)."""

# From the top down: each wing may import the ones after it, never those before it.
WINGS = ("orchestration", "service", "scoring", "registry", "modeling", "validation", "data")
# What every wing uses, at the bottom.
SHARED = ("config", "paths", "settings", "durable", "hashlog", "deadline", "permissions")
