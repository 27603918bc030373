"""MLOps renders descriptions and model cards with the portal's one Markdown renderer (`opsportal.portal.markdown`)."""

from opsportal.portal.markdown import render

__all__ = ["render"]
