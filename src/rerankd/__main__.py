"""``python -m rerankd`` is the ``rerankd`` command."""

import sys

from rerankd.commands.cli import main

sys.exit(main())
