"""Data in and out: sources and readers, typed columns, storage (the files themselves),
versioning (git and DVC) and data lineage. May import the shared modules only."""
