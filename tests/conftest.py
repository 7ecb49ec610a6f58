"""Test-wide settings.

Hypothesis draws its examples from a fixed seed (``derandomize``): a property test explores the
same cases on every run, so CI's verdict never depends on which random cases one run happened
to draw (set ``HYPOTHESIS_PROFILE=explore`` to search with fresh randomness). No deadline: the
machines are shared, and a property's verdict must not depend on how busy they are.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
