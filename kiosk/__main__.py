"""``python -m kiosk`` runs the kiosk service."""

import sys

from kiosk.service import main

sys.exit(main())
