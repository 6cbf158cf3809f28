"""20 concurrent viewers against the whole stack: 0 errors. CI runs it for
LOAD_SECONDS (default 10); `python -m bench.viewers` runs it for 60 s."""

import os

import pytest

from bench.viewers import run_viewers
from tests import load_world

pytestmark = pytest.mark.stack


def test_twenty_viewers_get_no_error(stack, tmp_path):
    world = load_world.make_world(stack, ("authsvc", stack.secrets["orthanc_password"]), tmp_path)
    seconds = int(os.environ.get("LOAD_SECONDS", "10"))
    result = run_viewers(world["base"], world["sessions"], clients=20, seconds=seconds)
    print(
        f"\n20 viewers, {result['seconds']:.0f} s: {result['requests']} requests, "
        f"{result['rate']:.0f}/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    assert result["requests"] > 20 * 10
    assert result["error_count"] == 0, result["errors"]
