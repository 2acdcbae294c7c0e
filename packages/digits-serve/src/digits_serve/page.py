"""The drawing page `digits serve` answers ``GET /`` with: one self-contained HTML file."""

from importlib import resources

# The page loads nothing from elsewhere; the policy makes the browser hold it to that.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def page_html() -> str:
    """The page's HTML, as shipped beside this module."""
    return resources.files("digits_serve").joinpath("page.html").read_text(encoding="utf-8")
