"""`python -m thkit` runs the `thkit` command."""

from thkit.cli import main

main()
