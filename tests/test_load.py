"""20 concurrent viewers against the whole stack: 0 errors. CI runs it for
LOAD_SECONDS (default 10); `python bench/viewers.py` runs it for 60 s."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import load_world  # noqa: E402
from bench.viewers import run_viewers  # noqa: E402
from conftest import ADMIN_PASSWORD  # noqa: E402


def test_twenty_viewers_get_no_error(stack, tmp_path, monkeypatch):
    monkeypatch.setattr(load_world, "ADMIN_PASSWORD", ADMIN_PASSWORD)
    world = load_world.make_world(stack, ("authsvc", stack.secrets["orthanc_password"]), tmp_path)
    seconds = int(os.environ.get("LOAD_SECONDS", "10"))
    result = run_viewers(world["base"], world["sessions"], clients=20, seconds=seconds)
    print(
        f"\n20 viewers, {result['seconds']:.0f} s: {result['requests']} requests, "
        f"{result['rate']:.0f}/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms"
    )
    assert result["requests"] > 20 * 10
    assert result["error_count"] == 0, result["errors"]
