"""``python -m ngff_resave``: the same as the ``ngff-resave`` command."""

from ngff_resave.cli import console_main

console_main()
