"""``python -m lanebench``: the same as the ``lanebench`` command."""

from lanebench.cli.main import main

main()
