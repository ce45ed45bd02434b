"""`python -m flows` runs the agencyml command line."""

from flows.cli import main

main()
