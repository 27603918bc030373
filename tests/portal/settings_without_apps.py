"""The portal's settings without the product apps named in OPSPORTAL_TEST_DROP_APPS (comma-separated)."""

import os

from opsportal.settings import *  # noqa: F403
from opsportal.settings import INSTALLED_APPS, SPECTACULAR_SETTINGS

DROPPED = {name for name in os.environ.get("OPSPORTAL_TEST_DROP_APPS", "").split(",") if name}
INSTALLED_APPS = [name for name in INSTALLED_APPS if name not in DROPPED]
SPECTACULAR_SETTINGS = {
    **SPECTACULAR_SETTINGS,
    "ENUM_NAME_OVERRIDES": {
        name: path
        for name, path in SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].items()
        if path.split(".")[0] not in DROPPED
    },
}
