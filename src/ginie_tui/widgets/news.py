"""News: the one panel that polls on its own, an RSS, Atom or JSON URL every 180 s.

Off when no URL is set (`--news-url` or `GINIE_NEWS_URL`). The app's news worker fetches; this
panel only shows what it is given."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from ginie_tui.news import NewsItem
from ginie_tui.widgets.base import Panel, fmt_time

SHOWN = 30


class NewsPanel(Panel):
    DEFAULT_CSS = """
    NewsPanel Static { height: auto; }
    NewsPanel { overflow-y: auto; }
    """
    TITLE = "News"

    def __init__(self, *args: object, url: str | None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.url = url
        self.items: list[NewsItem] = []

    def compose(self) -> ComposeResult:
        yield Static(id="news-body")

    def on_mount(self) -> None:
        super().on_mount()
        self.border_subtitle = "off" if not self.url else "waiting"

    def show_items(self, items: list[NewsItem], at_ms: int) -> None:
        self.items = items
        self.border_subtitle = f"fetched {fmt_time(at_ms)}"
        self.refresh_all()

    def show_error(self, text: str, at_ms: int) -> None:
        self.border_subtitle = f"failed {fmt_time(at_ms)}"
        self.query_one("#news-body", Static).update(f"[red]{text}[/]")

    def refresh_all(self) -> None:
        body = self.query_one("#news-body", Static)
        if not self.url:
            body.update("[dim]News is off: set --news-url or GINIE_NEWS_URL (RSS or JSON).[/]")
        elif not self.items:
            body.update("[dim]no news yet[/]")
        else:
            body.update(
                "\n".join(
                    f"• {item.title}" + (f" [dim]{item.published}[/]" if item.published else "")
                    for item in self.items[:SHOWN]
                )
            )
