"""The whole story in a real browser: sign up, mail, upload, live status, downloads, privacy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import PHONE, Stack, new_page, screenshot, sign_up
from tests.e2e.documents import make_docx, make_pdf

pytestmark = pytest.mark.e2e

LIVE = 90_000  # ms a document may take to turn ready on a busy machine


async def wait_for_mail(page: Page, subject: str) -> None:
    await page.goto("/mail")
    for _ in range(LIVE // 1000):
        if await page.get_by_role("link", name=re.compile(subject)).count():
            return
        await page.wait_for_timeout(1000)
        await page.reload()
    raise AssertionError(f"no mail {subject!r} on the Mail page")


async def test_the_whole_story(stack: Stack, browser: Browser, tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "Lighthouses.pdf")
    word = make_docx(tmp_path / "Beacon notes.docx")
    context, page = await new_page(browser, stack)

    await page.goto("/")
    await expect(page).to_have_url(stack.url("/login"))
    await screenshot(page, "login")
    await sign_up(page, "ada@example.com", "Ada Lovelace")

    # The welcome mail arrives through the worker and the SMTP catcher.
    await wait_for_mail(page, "Welcome")
    await expect(page.get_by_role("heading", level=2)).to_contain_text("Welcome")
    await expect(page.frame_locator("iframe.mail-html").get_by_text("Upload")).not_to_have_count(0)

    # Upload both; each row shows progress, then follows its document without a reload.
    await page.get_by_role("link", name="Upload").click()
    await page.evaluate("window.notReloaded = true")
    # A slow uplink, so that the progress bars can be seen moving.
    cdp = await context.new_cdp_session(page)
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 20, "downloadThroughput": -1, "uploadThroughput": 16_000},
    )
    await page.set_input_files("#files", [str(pdf), str(word)])
    rows = page.locator(".upload-row")
    await expect(rows).to_have_count(2)
    await page.wait_for_function(
        "[...document.querySelectorAll('.upload-row progress')]"
        ".some(bar => bar.value > 0 && bar.value < 100)"
    )
    await expect(rows.locator(".upload-state").first).to_contain_text("Uploading")
    await screenshot(page, "upload-progress")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    await expect(rows.locator(".badge-ready")).to_have_count(2, timeout=LIVE)
    assert await page.evaluate("window.notReloaded === true")
    await expect(rows.filter(has_text="Lighthouses.pdf")).to_be_visible()
    await expect(rows.filter(has_text="Beacon notes.docx")).to_be_visible()
    await screenshot(page, "upload")

    await page.get_by_role("link", name="Documents", exact=True).click()
    await expect(page.locator(".doc-table .badge-ready")).to_have_count(2)
    await expect(page.get_by_text("Beacon notes.docx")).to_be_visible()
    await screenshot(page, "documents")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "documents-phone")
    await page.set_viewport_size({"width": 1280, "height": 860})

    # The document page: summary with its source, the timeline, the text preview.
    await page.get_by_role("link", name="Lighthouses.pdf").click()
    await expect(page.locator("#summary")).to_contain_text(re.compile("keepers", re.I))
    await expect(page.locator("#summary-source")).to_contain_text("extractive")
    timeline = page.locator("#timeline")
    await expect(timeline).to_contain_text("uploaded")
    await expect(timeline.locator("li")).not_to_have_count(1)
    await expect(page.locator(".text-preview")).to_contain_text("Fresnel lens")
    await screenshot(page, "document")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "document-phone")
    await page.set_viewport_size({"width": 1280, "height": 860})
    document_url = page.url

    # Downloads: the original's bytes and name, the text and the summary.
    async with page.expect_download() as original:
        await page.get_by_role("button", name="Original").click()
    download = await original.value
    assert download.suggested_filename == "Lighthouses.pdf"
    assert Path(await download.path()).read_bytes() == pdf.read_bytes()
    async with page.expect_download() as text:
        await page.get_by_role("button", name="Text (.txt)").click()
    assert "Fresnel lens" in Path(await (await text.value).path()).read_text()
    async with page.expect_download() as summary:
        await page.get_by_role("button", name="Summary (.md)").click()
    assert Path(await (await summary.value).path()).read_text().strip()

    # The "ready" mails arrived too, with the summary in them.
    await wait_for_mail(page, "Lighthouses.pdf")
    await page.get_by_role("link", name=re.compile("Lighthouses.pdf")).click()
    mail = page.frame_locator("iframe.mail-html")
    await expect(mail.get_by_text(re.compile("Keepers lived"))).not_to_have_count(0)
    await screenshot(page, "mail", full_page=False)

    # Search filters the list as one types; deleting asks first.
    await page.get_by_role("link", name="Documents", exact=True).click()
    await page.get_by_role("searchbox", name="Search by name").fill("beacon")
    await expect(page.get_by_role("link", name="Lighthouses.pdf")).to_have_count(0)
    await page.get_by_role("link", name="Beacon notes.docx").click()
    await page.get_by_text("Delete this document…").click()
    await page.get_by_role("button", name="Yes, delete it").click()
    await expect(page).to_have_url(stack.url("/documents"))
    await expect(page.get_by_role("link", name="Beacon notes.docx")).to_have_count(0)
    await expect(page.get_by_role("link", name="Lighthouses.pdf")).to_be_visible()

    # Someone else can neither open nor download it.
    other_context, other = await new_page(browser, stack)
    await sign_up(other, "bob@example.com", "Bob")
    response = await other.goto(document_url)
    assert response is not None and response.status == 404
    await expect(other.get_by_role("heading", level=1)).to_have_text("Page not found")
    await expect(other.get_by_text("Lighthouses.pdf")).to_have_count(0)
    await screenshot(other, "not-found")
    api = await other.request.get(
        document_url.replace("/documents/", "/api/documents/") + "/original"
    )
    assert api.status == 404
    await other.goto("/documents")
    await expect(other.get_by_text("No documents yet.")).to_be_visible()
    await other_context.close()

    # Log out: the pages send Ada back to the login form.
    await page.get_by_role("button", name="Log out").click()
    await expect(page).to_have_url(stack.url("/login?notice=logged-out"))
    await expect(page.get_by_text("You are logged out.")).to_be_visible()
    await page.goto(document_url)
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await context.close()


async def test_upload_with_the_keyboard_only(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "Keyboard.pdf")
    context, page = await new_page(browser, stack)
    await sign_up(page, "kim@example.com", "Kim")

    for _ in range(20):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.id") == "files":
            break
    else:
        raise AssertionError("the file picker cannot be reached with Tab")
    # The picker is the browser's own file input, so Space or Enter opens the
    # system dialog; headless Chromium does not always report that dialog, so the
    # files are chosen on the focused control itself, as the dialog would.
    focused = page.locator(":focus")
    assert await focused.evaluate("el => el.tagName + ':' + el.type") == "INPUT:file"
    await expect(focused).to_be_visible()
    await expect(focused).to_be_enabled()
    picture = tmp_path / "photo.gif"
    picture.write_bytes(b"GIF89a" + bytes(64))
    await focused.set_input_files([str(pdf), str(picture)])

    refused = page.locator(".upload-row", has_text="photo.gif")
    await expect(refused.locator(".badge-failed")).to_be_visible()
    await expect(refused.locator(".reason")).to_contain_text("image/gif")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "upload-phone")
    row = page.locator(".upload-row", has_text="Keyboard.pdf")
    await expect(row.locator(".badge-ready")).to_be_visible(timeout=LIVE)
    await expect(row.locator("[aria-live=polite]")).to_contain_text("ready")
    for _ in range(30):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "Keyboard.pdf":
            break
    else:
        raise AssertionError("the uploaded document's link cannot be reached with Tab")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Keyboard.pdf")
    await context.close()


async def test_settings_page(stack: Stack, browser: Browser) -> None:
    context, page = await new_page(browser, stack)
    await sign_up(page, "sam@example.com", "Sam")
    await page.get_by_role("link", name="Settings").click()
    await page.get_by_label("Your time zone").select_option("Europe/Paris")
    await page.get_by_label(re.compile("Digest time")).select_option("7")
    await page.get_by_role("button", name="Save profile").click()
    await expect(page.get_by_text("Your profile is saved.")).to_be_visible()
    await expect(page.get_by_text("The digest arrives at 07:00 in Europe/Paris.")).to_be_visible()
    await page.get_by_label("New token name").fill("laptop")
    await page.get_by_role("button", name="Create token").click()
    await expect(page.locator("#new-token")).to_contain_text("ddp_")
    await screenshot(page, "settings")
    await page.set_viewport_size(PHONE)
    await screenshot(page, "settings-phone", full_page=False)
    await context.close()
