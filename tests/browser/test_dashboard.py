"""The dashboard in headless Chromium against a real `thaw serve`: every section, keyboard, phone width, keys."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.browser.conftest import READ_KEY, Servers, goto, screenshot

pytestmark = pytest.mark.browser


def rec_ids(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(f"{selector} li.rec", "els => els.map(e => e.dataset.id)")


def test_overview_shows_counts_growth_model_and_the_evaluation_report(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "overview")
    health = httpx.get(servers.open.url + "/health").json()
    totals = page.inner_text("#totals")
    assert re.search(r"Users\s+20\b", totals) and re.search(r"Items\s+16\b", totals)
    # Three growth charts, each an image with a spoken summary ending at today's totals.
    charts = page.locator("#growth svg[role=img]")
    assert charts.count() == 3
    assert "Users over time" in charts.nth(0).get_attribute("aria-label")
    events = httpx.get(servers.open.url + "/explore/overview").json()["events"]
    assert charts.nth(2).get_attribute("aria-label").startswith("Events over time: 1 on 2024-03-01")
    assert f", {events} on " in charts.nth(2).get_attribute("aria-label")
    assert page.inner_text("#model-version") == health["model_version"] != "content"
    # The evaluation table shows the numbers of the report `thaw evaluate --json` wrote.
    report = json.loads((servers.model_dir / "evaluation" / "cold-item.json").read_text())
    section = page.locator("#evaluation section.report")
    assert section.count() == 1
    assert "evaluation/cold-item.json" in section.inner_text()
    for result in report["results"]:
        metric = result["metrics"]["recall@20"]
        row = section.locator("tbody tr", has=page.locator("th", has_text=re.compile(f"^{result['model']}( live)?$")))
        assert row.count() == 1
        assert f"{metric['mean']:.4f} ± {metric['std']:.4f}" in row.inner_text()
    # The live model's method (thaw) is marked in the table, the chart and its spoken summary.
    assert {r["model"] for r in report["results"]} >= {"thaw", "popularity"}
    assert section.locator("tbody th .badge.live").count() == 1
    assert section.locator("tbody tr:has(.badge.live) th").inner_text().startswith("thaw")
    assert "is thaw, the method of the live version" in section.locator(".live-note").inner_text()
    assert section.locator("svg.bars[role=img]").count() == 1
    assert "thaw (live model's method)" in section.locator("svg.bars").get_attribute("aria-label")
    assert section.locator("svg.bars g.bar.live").count() == 1
    page.select_option("#report-0-metric", "ndcg@20")
    assert "ndcg@20" in section.locator("svg.bars").get_attribute("aria-label")
    screenshot(page, "overview")


def redrawn_after(page, act) -> tuple[list[str], dict]:
    """Run `act`, wait until the new-user list is redrawn: (its ids, the POST /recommendations body)."""
    version = page.get_attribute("#nu-recs", "data-version")
    with page.expect_request(lambda r: r.url.endswith("/recommendations") and r.method == "POST") as sent:
        act()
    page.wait_for_selector(f"#nu-recs:not([data-version='{version}'])")
    return rec_ids(page, "#nu-recs"), json.loads(sent.value.post_data)


def search(page, query: str, ready: str) -> None:
    """Type `query` in the new-user search and wait for `ready` among its results."""
    page.fill("#nu-search", query)
    page.wait_for_selector(f"#nu-results[data-query='{query}'] {ready}")


def test_new_user_list_changes_after_each_like(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "new-user")
    page.wait_for_selector("#nu-recs li.rec")
    before = rec_ids(page, "#nu-recs")
    assert len(before) == 10
    # Search, then like with the mouse.
    search(page, "pasta", "button.like[data-id='cook-1']")
    after_one, body = redrawn_after(page, lambda: page.click("#nu-results button.like[data-id='cook-1']"))
    assert body["liked_items"] == ["cook-1"] and body["rated_items"] == []
    assert after_one != before and "cook-1" not in after_one
    assert page.get_attribute("#nu-results button.like[data-id='cook-1']", "aria-pressed") == "true"
    assert "Cooking pasta at home" in page.inner_text("#nu-liked")
    assert {"cook-2", "cook-4"} & set(after_one[:3]), after_one  # the other pasta items come first
    # Every result says where it came from and why.
    first = page.locator("#nu-recs li.rec").first
    assert first.locator(".badge.src").inner_text() in ("model", "content", "popularity")
    assert first.locator(".reason").inner_text().strip()
    assert page.locator("#nu-recs li.rec.new").count() >= 1
    # Like a second item with the keyboard only.
    search(page, "jazz", "button.like[data-id='jazz-1']")
    assert page.locator("#nu-results li.pick").count() == 3  # only the titles with "jazz"
    page.focus("#nu-results button.like[data-id='jazz-1']")
    after_two, _ = redrawn_after(page, lambda: page.keyboard.press("Enter"))
    assert after_two != after_one and "jazz-1" not in after_two
    assert "Updated after liking" in page.inner_text("#nu-status")
    # An attribute also changes the request (the status names it).
    redrawn_after(page, lambda: page.select_option("#nu-attributes select >> nth=0", index=1))
    assert re.search(r"after setting (age|group) to", page.inner_text("#nu-status"))
    screenshot(page, "new-user")


def test_new_user_list_changes_after_each_rating(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "new-user")
    page.wait_for_selector("#nu-recs li.rec")
    before = rec_ids(page, "#nu-recs")
    stars = "#nu-results fieldset.stars[data-id='cook-1']"
    search(page, "pasta", "fieldset.stars[data-id='cook-1']")
    assert page.locator(f"{stars} legend").inner_text() == "Rate Cooking pasta at home"
    assert page.locator(f"{stars} input[type=radio]").count() == 5
    # Four stars with the mouse: the request carries the rating, the list changes.
    after_one, body = redrawn_after(page, lambda: page.click(f"{stars} label[for$='-4']"))
    assert body["rated_items"] == [{"item": "cook-1", "value": 4}] and body["liked_items"] == []
    assert after_one != before and "cook-1" not in after_one
    assert {"cook-2", "cook-4"} & set(after_one[:3]), after_one
    assert "after rating “Cooking pasta at home” 4 of 5 stars" in page.inner_text("#nu-status")
    chip = page.locator("#nu-liked li.chip.rated[data-id='cook-1']")
    assert chip.get_attribute("data-value") == "4" and "rated 4 of 5 stars" in chip.inner_text()
    assert page.locator(f"{stars} label.star.on").count() == 4
    first = page.locator("#nu-recs li.rec").first
    assert first.locator(".badge.src").inner_text() in ("model", "content", "popularity")
    assert first.locator(".reason").inner_text().strip()
    # Keyboard only: arrow keys move the rating a star at a time; each step updates the list.
    page.focus(f"{stars} input[value='4']")
    _, body = redrawn_after(page, lambda: page.keyboard.press("ArrowLeft"))
    assert body["rated_items"] == [{"item": "cook-1", "value": 3}]
    assert page.get_attribute(f"{stars} input[value='3']", "id") == page.evaluate("document.activeElement.id")
    # A like replaces the rating (an item is liked or rated, not both).
    _, body = redrawn_after(page, lambda: page.click("#nu-results button.like[data-id='cook-1']"))
    assert body["liked_items"] == ["cook-1"] and body["rated_items"] == []
    assert page.locator(f"{stars} input:checked").count() == 0
    # Rate a second item low, then remove that rating from the chips.
    search(page, "jazz", "fieldset.stars[data-id='jazz-1']")
    with_low, body = redrawn_after(page, lambda: page.click("#nu-results fieldset.stars[data-id='jazz-1'] label[for$='-1']"))
    assert body["rated_items"] == [{"item": "jazz-1", "value": 1}] and "jazz-1" not in with_low
    screenshot(page, "new-user-rated")
    remove = "#nu-liked button[aria-label='Remove your rating of Jazz piano for night owls']"
    _, body = redrawn_after(page, lambda: page.click(remove))
    assert body["rated_items"] == [] and body["liked_items"] == ["cook-1"]
    assert "removing your rating" in page.inner_text("#nu-status")
    assert page.locator("#nu-liked li.chip.rated").count() == 0


def test_added_item_is_similar_to_a_related_item_at_once(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "add-item")
    page.fill("#ai-id", "space-new")
    page.fill("#ai-title", "Deep space stars and galaxies: a star atlas")
    page.fill("#ai-text", "stars and galaxies in deep space")
    page.fill(".attr-row .attr-key", "genre")
    page.fill(".attr-row .attr-value", "scifi")
    page.click("#ai-submit")
    page.wait_for_selector("#ai-status:has-text('Added')")
    similar = rec_ids(page, "#ai-similar")
    assert similar and "space-new" not in similar
    assert set(similar[:3]) & {"space-1", "space-2", "space-3"}, similar
    audience = page.locator("#ai-audience tbody tr")
    assert audience.count() >= 1
    assert "would be recommended" in page.inner_text("#add-item").lower()
    screenshot(page, "add-item")
    stored = httpx.get(servers.open.url + "/items/space-new").json()
    assert stored["attributes"] == {"genre": "scifi"}
    # The related item now lists the new one among its neighbours.
    goto(page, servers.open, "explore/item/space-3")
    neighbours = rec_ids(page, "#ex-item-similar")
    assert "space-new" in neighbours[:5], neighbours
    screenshot(page, "explore-item")


def test_explore_a_user_then_an_item_from_their_history(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "explore")
    page.fill("#ex-user-id", "u1")
    page.press("#ex-user-id", "Enter")
    page.wait_for_selector("#ex-user-recs li.rec")
    history = page.locator("#ex-result table tbody tr")
    assert history.count() == 4  # u1's four events
    seen = set(page.eval_on_selector_all("#ex-result table tbody a.item-link", "as => as.map(a => a.textContent)"))
    recommended = rec_ids(page, "#ex-user-recs")
    titles = {i["id"]: i["title"] for i in httpx.get(servers.open.url + "/explore/items", params={"limit": 100}).json()["items"]}
    assert not seen & {titles[i] for i in recommended}  # history is left out of the recommendations
    screenshot(page, "explore-user")
    page.click("#ex-result table tbody a.item-link >> nth=0")
    page.wait_for_selector("#ex-item-similar li.rec")
    assert "u1" in page.inner_text("#ex-result")  # among the users who interacted
    # Title search finds an item and opens it.
    page.fill("#ex-item-q", "jazz clubs")
    page.press("#ex-item-q", "Enter")
    page.wait_for_selector("#ex-result h2:has-text('Jazz clubs of New Orleans')")
    assert page.url.endswith("#explore/item/jazz-3")


def test_keyboard_tabs_labels_and_live_regions(servers: Servers, page_on) -> None:
    page, _ = page_on(servers.open)
    goto(page, servers.open, "overview")
    page.focus("#tab-overview")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("body[data-ready='new-user']")
    assert page.get_attribute("#tab-new-user", "aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "tab-new-user"
    assert page.is_hidden("#overview") and page.is_visible("#new-user")
    page.keyboard.press("End")
    page.wait_for_selector("body[data-ready='explore']")
    for section in ("overview", "new-user", "add-item", "explore/item/love-1"):
        goto(page, servers.open, section)
        unlabeled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
                 .filter(el => el.offsetParent !== null)
                 .filter(el => !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.textContent.trim()))
                 .map(el => el.outerHTML)"""
        )
        assert not unlabeled, unlabeled
    for live in ("#nu-recs", "#nu-results", "#ai-similar", "#ai-audience", "#ex-result"):
        assert page.get_attribute(live, "aria-live") == "polite"
    assert page.get_attribute("#tabs", "role") == "tablist"


@pytest.mark.parametrize("section", ["overview", "new-user", "add-item", "explore/item/space-1", "explore/user/u2"])
def test_phone_width_needs_no_sideways_scrolling(servers: Servers, page_on, section: str) -> None:
    page, _ = page_on(servers.open, width=390, height=844)
    goto(page, servers.open, section)
    if section == "new-user":
        page.wait_for_selector("#nu-recs li.rec")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{section} is {overflow}px wider than a 390px phone"
    assert page.is_visible("#tab-explore") and page.is_visible("#tab-add-item")
    screenshot(page, "phone-" + section.replace("/", "-"))


def test_keyed_server_asks_for_a_key_and_keeps_it_in_the_tab(servers: Servers, page_on) -> None:
    page, guard = page_on(servers.keyed)
    guard.allowed_console.append("401")
    guard.allowed_console.append("403")
    goto(page, servers.keyed, "overview")
    assert page.is_visible("#key-form")
    assert "requires an API key" in page.inner_text("#alert")
    page.fill("#api-key", READ_KEY)
    page.press("#api-key", "Enter")
    page.wait_for_selector("#totals .total")
    assert page.is_hidden("#alert")
    assert page.evaluate("sessionStorage.getItem('thaw.apiKey')") == READ_KEY
    # A read key cannot add items: the page says so.
    goto(page, servers.keyed, "add-item")
    page.fill("#ai-title", "A read key cannot write this")
    page.click("#ai-submit")
    page.wait_for_selector("#ai-status.error")
    assert "403" in page.inner_text("#ai-status")
    screenshot(page, "keyed-add-item-with-read-key")
    # The key survives a reload of the tab.
    page.reload()
    page.wait_for_selector("body[data-ready='add-item']")
    assert page.input_value("#api-key") == READ_KEY


def test_page_and_assets_are_served_by_thaw_with_a_strict_policy(servers: Servers) -> None:
    page = httpx.get(servers.open.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # no external asset in the page
    script = httpx.get(servers.open.url + "/static/js/main.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(servers.open.url + "/static/../app.py").status_code == 404
    assert httpx.get(servers.open.url + "/static/%2e%2e/routes/dashboard.py").status_code == 404
    schema = httpx.get(servers.open.url + "/openapi.json").json()
    assert "/" not in schema["paths"] and "/explore/items/{item_id}/audience" in schema["paths"]
