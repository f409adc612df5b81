"""Fixtures of the integration tests."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def every_logger_at_debug(caplog):
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for logger, level in levels.items():
        logger.setLevel(level)
