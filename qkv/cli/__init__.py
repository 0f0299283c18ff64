"""Command-line interface: ``qkv COMMAND ...`` (see ``qkv --help``)."""
