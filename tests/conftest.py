import os

import pytest

# Keep the suite predictable on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")

# ../shared beside the checkout; TRACKFORMERS_SHARED points elsewhere (a worktree in a subfolder).
SHARED = os.environ.get("TRACKFORMERS_SHARED") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


@pytest.fixture(scope="session")
def shared_dir():
    """The ../shared folder beside the checkout (fixtures of the official code)."""
    if not os.path.isdir(SHARED):
        pytest.skip("../shared is not beside this checkout")
    return SHARED
