"""``python -m demo`` runs the walk-through."""

import sys

from demo.run import main

sys.exit(main())
