"""The GUI's static files (src/tutela/gui/static): both message catalogues have the same
keys and placeholders, every key the page uses is in them and every key in them is used,
and every file the page loads is there (it is shipped as package data, nothing built)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from tutela.gui import LANGUAGES, STATIC_DIR

PROJECT = Path(__file__).parents[2]
KEY = r"[a-z_]+(?:\.[a-z_]+)*"
DYNAMIC_KEYS = {
    # t(`role.${me.role}`) and t(`timeline.${name}`): the roles and the timeline's columns
    *(f"role.{role}" for role in ("admin", "operator", "guest")),
    *(f"timeline.{column}" for column in ("time", "node", "severity", "kind", "subject",
                                          "cause")),
}


def catalogue(language: str) -> dict[str, str]:
    entries = json.loads((STATIC_DIR / "i18n" / f"{language}.json").read_text())
    assert isinstance(entries, dict)
    return entries


def page_sources() -> dict[Path, str]:
    files = [*(STATIC_DIR / "js").glob("*.js"), STATIC_DIR / "index.html"]
    return {path: path.read_text() for path in files}


def test_both_catalogues_have_the_same_keys() -> None:
    english, japanese = catalogue("en"), catalogue("ja")
    assert LANGUAGES == ("en", "ja")
    assert sorted(english) == sorted(japanese), set(english) ^ set(japanese)


def test_placeholders_are_the_same_in_both_languages() -> None:
    english, japanese = catalogue("en"), catalogue("ja")
    differing = {key: (text, japanese[key]) for key, text in english.items()
                 if set(re.findall(r"\{\w+\}", text)) != set(re.findall(r"\{\w+\}",
                                                                         japanese[key]))}
    assert differing == {}


def test_no_message_is_left_untranslated() -> None:
    english, japanese = catalogue("en"), catalogue("ja")
    same = [key for key, text in english.items()
            if japanese[key] == text and re.search(r"[A-Za-z]{4}", re.sub(r"\{\w+\}", "",
                                                                          text))]
    assert same == []


def test_every_key_used_is_in_the_catalogue_and_every_key_there_is_used() -> None:
    keys = set(catalogue("en"))
    called: set[str] = set()
    literals: set[str] = set()
    for text in page_sources().values():
        called |= set(re.findall(rf'\bt\(\s*"({KEY})"', text))
        called |= set(re.findall(rf'data-i18n(?:-placeholder)?="({KEY})"', text))
        literals |= set(re.findall(rf'"({KEY})"', text))
    assert called - keys == set(), "used by the page, missing from the catalogues"
    assert DYNAMIC_KEYS - keys == set()
    assert keys - literals - DYNAMIC_KEYS == set(), "in the catalogues, used nowhere"


def test_every_file_the_page_loads_is_there() -> None:
    missing = []
    for path, text in page_sources().items():
        references = re.findall(r'from "(\./[\w.]+)"', text) + re.findall(
            r'(?:src|href)="((?:js|css)/[\w./]+)"', text)
        missing += [f"{path.name}: {ref}" for ref in references
                    if not (path.parent / ref).is_file()]
    assert missing == []
    assert {p.name for p in (STATIC_DIR / "i18n").glob("*.json")} == {
        f"{language}.json" for language in LANGUAGES}


def test_the_static_files_are_package_data() -> None:
    """No build step: the wheel (and so the Debian package) carries the files as they are."""
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["tutela.gui"]
    shipped = {path.relative_to(STATIC_DIR.parent) for pattern in patterns
               for path in STATIC_DIR.parent.glob(pattern) if path.is_file()}
    on_disk = {path.relative_to(STATIC_DIR.parent) for path in STATIC_DIR.rglob("*")
               if path.is_file()}
    assert on_disk and on_disk == shipped


def test_nothing_is_fetched_from_another_site() -> None:
    for path, text in page_sources().items():
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), path
        assert "import(" not in text or "http" not in text, path
