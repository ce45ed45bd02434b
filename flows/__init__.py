"""Prefect flows: thin, declarative recipes over pipelines/, one module per flow, and the command
line (flows/cli/). Prefect lives here and in pipelines/orchestration/ only. May import anything
in pipelines/; nothing in pipelines/ imports flows/."""
