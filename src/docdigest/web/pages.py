"""Every HTML page, gathered into the one router main.py includes."""

from fastapi import APIRouter

from docdigest.web import account_pages, document_pages, mail_pages, settings_pages

router = APIRouter(include_in_schema=False)
router.include_router(account_pages.router)
router.include_router(settings_pages.router)
router.include_router(document_pages.router)
router.include_router(mail_pages.router)
