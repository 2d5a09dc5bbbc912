"""The browser GUI (docs/gui.md): static files only, served by the HTTPS API's process.

Plain ES modules, CSS and the en/ja message catalogues under `static/`, shipped as package
data: no build step, nothing fetched at install time or from a CDN at run time. The page
talks to the API (docs/api.md) and redraws from its event stream and status.
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
"""Where index.html, js/, css/ and i18n/ are; the API mounts it at the site's root."""
LANGUAGES = ("en", "ja")
"""The message catalogues in static/i18n/, one JSON object per language, the same keys."""
