import pytest


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op torch thread for the whole suite: the test networks are tiny and gain nothing from
    two, while on a shared 2-core machine two OpenMP threads spin-waiting on each other can make a
    step up to 10× slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
