"""Steps shared by the browser tests."""

from playwright.sync_api import expect

from tests.portal.factories import PASSWORD


def log_in(page, username: str) -> None:
    """Open the portal, get sent to the login page, log in, land on the overview."""
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
