"""``python -m transferkit.cli``."""

from transferkit.cli import main

main()
