# SPDX-License-Identifier: MIT
"""Bad input gets a clear error and changes nothing: sizes that overflow."""

from conftest import dlvm


def test_metadatasize_that_overflows_changes_nothing(tmp_path):
    """--metadatasize near 2^64 used to wrap: 8 KiB of the device were zeroed
    before the write failed, or a PV was made with the default size."""
    img = tmp_path / "pv.img"
    head = bytes(range(256)) * 64  # 16 KiB that must survive
    with open(img, "wb") as f:
        f.write(head)
        f.truncate(64 << 20)
    for size, want in [("18446744073709543424b", "metadata size 18446744073709543424 is too large"),
                       ("18446744073709551615b", "--metadatasize 18446744073709551615b is "
                                                 "too large"),
                       ("1g", "is too small: a PV with 1073741824 bytes of metadata")]:
        rc, out, err = dlvm("--devices", img, "pvcreate", "-ff", "-y", "--metadatasize", size,
                            img)
        assert rc != 0, out
        assert want in err, err
        with open(img, "rb") as f:
            assert f.read(len(head)) == head, f"--metadatasize {size} changed the device"
