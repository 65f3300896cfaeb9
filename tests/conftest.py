"""Suite-wide settings."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' tensors are small: a second thread gains nothing and, on a shared 2-core machine,
    its synchronisation makes small ops 10-20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
