"""The ``family`` fixture: each tiny model family of :mod:`trace_models` with a padded batch."""

import pytest

from tests.trace.trace_models import FAMILIES


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    """``(model, run)``: a tiny model and a function that runs it on a padded batch."""
    make, run = FAMILIES[request.param]
    return make(), run
