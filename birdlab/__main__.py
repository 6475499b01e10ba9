"""`python -m birdlab ...`"""

import sys

from birdlab.cli import main

sys.exit(main())
