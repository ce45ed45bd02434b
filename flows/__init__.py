"""Prefect flows: thin, declarative recipes over pipelines/. Prefect lives here and only here."""
