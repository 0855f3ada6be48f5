"""Shared fixtures of the TVConv tests."""
from __future__ import annotations

import pytest

from tvconv.models import mobilenet_v2


@pytest.fixture(scope="session")
def mbv2_tvconv():
    """MobileNetV2 x0.1 with TVConv at 96x96 (16.4 M parameters; built once)."""
    return mobilenet_v2(0.1, "tvconv")


@pytest.fixture(scope="session")
def mbv2_depthwise():
    """MobileNetV2 x0.1 with depthwise convs at 96x96."""
    return mobilenet_v2(0.1, "depthwise")
