"""Settings shared by every test folder.

Hypothesis runs with no per-example deadline (worker start-up time varies
with machine load) and a bounded number of examples, so the whole suite
stays within minutes. HYPOTHESIS_PROFILE=thorough runs more examples.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
