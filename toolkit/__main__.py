"""`python -m toolkit` (and `torchrun -m toolkit train ...`) runs the CLI."""

from toolkit.cli import main

main()
