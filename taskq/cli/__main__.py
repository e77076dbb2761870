"""``python -m taskq.cli``: the same as the ``taskq`` script."""

from taskq.cli.app import main

main()
