"""The ``zoomake`` command line: ``main`` parses the arguments and dispatches to one module per
subcommand (``cmd_<name>``, as pydoit's ``cmd_*.py``)."""
