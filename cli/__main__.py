"""`python -m cli`: the same as the `scanhub` console script."""

from cli.main import main

main()
