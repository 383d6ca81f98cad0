"""The ``seeded`` history shared by the /history and /stats tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from control_api.tables import utcnow
from tests.control_api.records.history_rows import make_rows


@pytest.fixture
def seeded(app) -> list[dict[str, Any]]:
    """300 rows over the last five hours: several rollup buckets and partial edges."""
    return make_rows(app, 300, utcnow() - timedelta(hours=5), timedelta(hours=5))
