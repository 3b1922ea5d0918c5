# SPDX-License-Identifier: MIT
"""Two minutes of the soak test (tests/system/soak.py): four hosts on a
shared VG, verified writes on thin volumes, metadata changes, hosts killed
and stopped at random. `make soak` runs it for as long as asked."""
import os

from soak import Soak


def test_soak_two_minutes(tmp_path):
    seconds = int(os.environ.get("CHECK_SOAK_SECONDS", "120"))
    s = Soak(tmp_path / "soak", hosts=4, seconds=seconds, seed=int.from_bytes(os.urandom(4), "little"))
    try:
        ok = s.run()
    finally:
        s.cleanup()
    c = s.counts
    assert ok, "\n".join(s.errors)
    # the run did what it is for: data verified, hosts taken down, changes made
    assert c["rounds"] > 0 and c["writes_verified"] > 0, c
    assert c["kills"] + c["stops"] > 0 and c["metadata_changes"] > 0, c
