"""`peak_rss_mib` is the peak of the process image that asks, not of the parent that forked it: the memory tests and
`vda-bench` run their measurements in children of large processes."""
import subprocess
import sys

from vda_lightning.memory import peak_rss_mib

CHILD = "from vda_lightning.memory import peak_rss_mib; import resource; " \
        "print(peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"


def test_a_child_of_a_big_parent_reports_its_own_peak():
    ballast = bytearray(384 << 20)  # resident in this process while it forks the child
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    assert peak_rss_mib() > 384
    own, inherited = map(float, subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                                               check=True).stdout.split())
    del ballast
    assert own < 200, own  # a bare interpreter plus this module
    if sys.platform.startswith("linux"):
        assert inherited > 384, inherited  # what ru_maxrss would have said: the parent's ballast
