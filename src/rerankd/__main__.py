"""``python -m rerankd`` is the ``rerankd`` command."""

import sys

from rerankd.cli import main

sys.exit(main())
