"""Parsing of the news panel's feed: RSS 2.0, Atom, or JSON. Pure; the fetching is in feed.py.

JSON may be a list of items or an object with an `items` list; an item needs a `title` and may
carry `url` or `link`, and `time`, `published` or `date`. Anything unreadable raises NewsError.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

MAX_ITEMS = 50


@dataclass(frozen=True)
class NewsItem:
    title: str
    link: str = ""
    published: str = ""


class NewsError(ValueError):
    """A news document that could not be read; the message says why."""


def parse_news(body: str) -> list[NewsItem]:
    """Read the items of an RSS, Atom or JSON news document, first item first."""
    text = body.lstrip()
    if text.startswith(("{", "[")):
        return _parse_json(text)
    if text.startswith("<"):
        return _parse_xml(text)
    raise NewsError("neither JSON nor RSS/Atom")


def _parse_json(text: str) -> list[NewsItem]:
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise NewsError(f"invalid JSON: {exc}") from None
    items = doc.get("items") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise NewsError("JSON news must be a list or an object with an 'items' list")
    out: list[NewsItem] = []
    for item in items[:MAX_ITEMS]:
        if isinstance(item, dict) and isinstance(item.get("title"), str):
            link = item.get("url") or item.get("link") or ""
            when = item.get("time") or item.get("published") or item.get("date") or ""
            out.append(NewsItem(item["title"].strip(), str(link), str(when)))
    return out


def _parse_xml(text: str) -> list[NewsItem]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise NewsError(f"invalid XML: {exc}") from None
    atom = "{http://www.w3.org/2005/Atom}"
    out: list[NewsItem] = []
    for item in root.iter("item"):
        out.append(
            NewsItem(
                (item.findtext("title") or "").strip(),
                (item.findtext("link") or "").strip(),
                (item.findtext("pubDate") or "").strip(),
            )
        )
    for entry in root.iter(f"{atom}entry"):
        link = entry.find(f"{atom}link")
        out.append(
            NewsItem(
                (entry.findtext(f"{atom}title") or "").strip(),
                link.get("href", "") if link is not None else "",
                (entry.findtext(f"{atom}updated") or "").strip(),
            )
        )
    return [n for n in out if n.title][:MAX_ITEMS]
