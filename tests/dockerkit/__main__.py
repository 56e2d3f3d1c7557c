"""`python -m tests.dockerkit`: build (or confirm) every test image ahead of a test run."""

from __future__ import annotations

import sys

from .images import main

sys.exit(main())
