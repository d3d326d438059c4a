"""Account jobs: the welcome mail right after signup, the onboarding nudge a day later."""

from docdigest.jobs import JobContext, JobSpec, job
from docdigest.mail.mailer import Mailer
from docdigest.users.emails import send_nudge, send_welcome


@job(timeout_s=30, subject="user:{user_id}")
async def send_welcome_email(jc: JobContext, user_id: int) -> None:
    await send_welcome(jc.session, jc.resource(Mailer), user_id)


@job(timeout_s=30, subject="user:{user_id}")
async def send_onboarding_nudge(jc: JobContext, user_id: int) -> None:
    await send_nudge(jc.session, jc.resource(Mailer), user_id)


JOBS: list[JobSpec] = [send_welcome_email, send_onboarding_nudge]
