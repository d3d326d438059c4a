from docdigest.jobs import JobSpec

JOBS: list[JobSpec] = []
