"""``python -m qkv`` runs the ``qkv`` command."""

import sys

from qkv.cli.main import main

sys.exit(main())
