import pytest


def pytest_addoption(parser):
    parser.addoption("--seeds", type=int, default=None,
                     help="how many seeds each simulation test runs (default: the test's own)")


@pytest.fixture
def seed_count(request):
    return request.config.getoption("--seeds")


@pytest.fixture(autouse=True)
def quiet_logs():
    """Simulations log thousands of role changes; keep warnings only."""
    import logging

    import structlog
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    yield
    structlog.configure(**previous)
