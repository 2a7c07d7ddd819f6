import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions run fastest single-threaded, and far more predictably on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
