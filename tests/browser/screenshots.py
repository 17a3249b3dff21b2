"""Screenshots of the dashboard for docs/dashboard.md, taken from a running `thaw serve`.

    python -m tests.browser.screenshots --url http://127.0.0.1:8000 --out docs/img \
        --like "Toy Story (1995)" --rate "Star Wars (1977)=5" --rate "Fargo (1996)=1" --similar-to 50

It drives the same flows as the browser tests (like and rate items, add an item, explore), in
Debian's headless Chromium, and refuses any request that does not go to `--url`. `--sections`
takes only some of the screenshots.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, Guard

SECTIONS = ("overview", "new-user", "add-item", "phone")  # add-item also takes the explore screenshot
NEW_ITEM = {
    "id": "docs-galaxy-quest-2",
    "title": "Galaxy Quest 2: Return to the Stars",
    "text": "The washed-up cast of a space TV show is beamed into a real interstellar war again.",
    "attributes": [("genres", "Comedy, Sci-Fi"), ("year", "2026")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--like", action="append", default=[], help="titles to like as a new user")
    parser.add_argument("--rate", action="append", default=[], help="TITLE=STARS (1-5) to rate as a new user")
    parser.add_argument("--similar-to", default=None, help="item id whose page is shown after adding the item")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    if sections - set(SECTIONS):
        raise SystemExit(f"--sections: unknown {', '.join(sorted(sections - set(SECTIONS)))}; choose from {', '.join(SECTIONS)}")
    ratings = [_rating(spec) for spec in args.rate]
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (make browser)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    _prepare(args.url.rstrip("/"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        guard = Guard(args.url.rstrip("/"))
        for width, name in ((1280, "desktop"), (390, "phone")):
            if name == "phone" and "phone" not in sections:
                continue
            context = browser.new_context(viewport={"width": width, "height": 900 if width > 500 else 844})
            context.route("**/*", lambda route: route.continue_() if guard.check_request(route.request.url) else route.abort())
            page = context.new_page()
            page.set_default_timeout(60_000)
            if name == "phone":
                _open(page, args.url, "new-user")
                for title in args.like[:1]:
                    _like(page, title)
                for title, stars in ratings[:1]:
                    _rate(page, title, stars)
                _shot(page, args.out / "dashboard-phone.png", full=False)
                context.close()
                continue
            if "overview" in sections:
                _open(page, args.url, "overview")
                _shot(page, args.out / "dashboard-overview.png")
            if "new-user" in sections:
                _open(page, args.url, "new-user")
                for title in args.like:
                    _like(page, title)
                for title, stars in ratings:
                    _rate(page, title, stars)
                page.fill("#nu-search", "")
                _shot(page, args.out / "dashboard-new-user.png")
            if "add-item" not in sections:
                context.close()
                continue
            _open(page, args.url, "add-item")
            page.fill("#ai-id", NEW_ITEM["id"])
            page.fill("#ai-title", NEW_ITEM["title"])
            page.fill("#ai-text", NEW_ITEM["text"])
            for n, (key, value) in enumerate(NEW_ITEM["attributes"]):
                if n:
                    page.click("#ai-add-attr")
                page.fill(f".attr-row >> nth={n} >> .attr-key", key)
                page.fill(f".attr-row >> nth={n} >> .attr-value", value)
            page.click("#ai-submit")
            page.wait_for_selector("#ai-status:has-text('Added'), #ai-status:has-text('Updated'), #ai-status:has-text('Unchanged')")
            _shot(page, args.out / "dashboard-add-item.png")
            if args.similar_to:
                _open(page, args.url, f"explore/item/{args.similar_to}")
                _shot(page, args.out / "dashboard-explore-item.png")
            context.close()
        browser.close()
    guard.assert_clean()
    print(f"screenshots in {args.out}")


def _rating(spec: str) -> tuple[str, int]:
    """'TITLE=STARS' -> (title, stars), stars 1-5."""
    title, _, stars = spec.rpartition("=")
    if not title or stars not in {"1", "2", "3", "4", "5"}:
        raise SystemExit(f"--rate {spec!r}: expected TITLE=STARS with STARS from 1 to 5")
    return title, int(stars)


def _prepare(url: str) -> None:
    """Remove the demo item of an earlier run, and have the server load its text encoder.

    The encoder loads on the first text the catalogue has not cached (about 5 s for MiniLM on two
    cores); the screenshot of adding an item shows the steady-state time instead.
    """
    import httpx

    httpx.delete(f"{url}/items/{NEW_ITEM['id']}", timeout=60)
    httpx.post(f"{url}/recommendations", json={"text": "warming up the text encoder", "k": 1}, timeout=120).raise_for_status()


def _open(page, url: str, section: str) -> None:
    if page.url.startswith(url):
        page.evaluate("document.body.removeAttribute('data-ready')")
    page.goto(f"{url.rstrip('/')}/#{section}")
    page.wait_for_selector(f"body[data-ready='{section.split('/')[0]}']")


def _like(page, title: str) -> None:
    _pick(page, title, "button.like")


def _rate(page, title: str, stars: int) -> None:
    _pick(page, title, f"fieldset.stars label[for$='-{stars}']")


def _pick(page, title: str, control: str) -> None:
    """Search for `title`, click `control` in its result, wait until the list is redrawn."""
    page.fill("#nu-search", title)
    page.wait_for_selector(f"#nu-results[data-query={json.dumps(title)}]")
    target = page.locator("#nu-results li.pick", has_text=title).first.locator(control)
    version = page.get_attribute("#nu-recs", "data-version")
    target.click()
    page.wait_for_selector(f"#nu-recs:not([data-version='{version}'])")


def _shot(page, path: Path, *, full: bool = True) -> None:
    page.evaluate("document.activeElement && document.activeElement.blur()")
    time.sleep(0.3)  # let the last layout settle
    page.screenshot(path=str(path), full_page=full)
    print(path)


if __name__ == "__main__":
    main()
