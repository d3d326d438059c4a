"""Forms in a real browser: errors beside the fields, CSRF rejection, login rate limit."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import PASSWORD, PHONE, Stack, new_page, screenshot, sign_up

pytestmark = pytest.mark.e2e


async def test_signup_errors_are_shown_next_to_the_fields(stack: Stack, browser: Browser) -> None:
    context, page = await new_page(browser, stack)
    await page.goto("/signup")
    await page.get_by_label("Name").fill("Ada Lovelace")
    await page.get_by_label("Email").fill("ada-at-example")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("main").get_by_role("button", name="Sign up").click()

    email = page.get_by_label("Email")
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#email-error")).to_contain_text("email address")
    await expect(page.locator("#password-error")).to_contain_text("at least")
    await expect(email).to_have_value("ada-at-example")
    await expect(page.get_by_label("Name")).to_have_value("Ada Lovelace")
    await expect(page.get_by_label("Password")).to_have_value("")
    await screenshot(page, "signup-errors")
    await context.close()


async def test_a_tampered_form_is_refused_by_the_csrf_check(stack: Stack, browser: Browser) -> None:
    context, page = await new_page(browser, stack)
    await sign_up(page, "ada@example.com")
    await page.goto("/settings")
    form = page.locator("form[action='/settings/tokens']")
    await form.locator("input[name=csrf_token]").evaluate("el => { el.value = 'forged' }")
    await page.get_by_label("New token name").fill("script")
    await page.get_by_role("button", name="Create token").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    await expect(page.locator("#error-message")).to_contain_text("CSRF check failed")
    await page.get_by_role("button", name="Back to your documents").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Documents")
    await page.goto("/settings")
    await expect(page.get_by_text("No tokens yet.")).to_be_visible()
    await context.close()


async def test_login_is_rate_limited_with_a_clear_message(stack: Stack, browser: Browser) -> None:
    context, page = await new_page(browser, stack)
    await sign_up(page, "ada@example.com")
    await context.clear_cookies()

    await page.goto("/login")
    for _ in range(stack.settings.login_max_failures_per_account):
        await page.get_by_label("Email").fill("ada@example.com")
        await page.get_by_label("Password").fill("not the password")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")

    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Too many failed logins")
    await expect(page).to_have_url(stack.url("/login"))
    await page.set_viewport_size(PHONE)
    await screenshot(page, "login-rate-limited-phone")
    await context.close()
