"""``python -m central`` runs the central service."""

import sys

from central.service import main

sys.exit(main())
