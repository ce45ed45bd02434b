"""The validation gate: expectations as plain objects, the GX adapter (the only GX importer),
the accept/quarantine/reject rules and the gate end to end. May import data and the shared
modules."""
