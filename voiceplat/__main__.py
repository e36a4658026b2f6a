"""`python -m voiceplat ...` == the `voiceplat` command (for a venv whose bin/ is not on PATH)."""

import sys

from voiceplat.cli import main

sys.exit(main())
