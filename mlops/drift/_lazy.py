"""scipy.stats imported on first use: it costs about 70 MB and a second, and the default methods for
references above 1,000 rows (normed Wasserstein, Jensen-Shannon) do not need it."""

from __future__ import annotations

import importlib
from typing import Any


class _Lazy:
    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attribute: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)


stats: Any = _Lazy("scipy.stats")
