import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: on a shared 2-core machine one thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
