"""Summaries from any OpenAI-compatible chat-completions endpoint (OpenAI, Ollama, vLLM,
llama.cpp server), map-reduce over chunks that fit the model's context.

Errors are left to the job tier's retry policy: the client itself never retries.
"""

from __future__ import annotations

import asyncio

import openai

from docdigest.documents.summarize.extractive import summarize_extractive
from docdigest.documents.summarize.sentences import split_sentences
from docdigest.settings import Settings

CHARS_PER_TOKEN = 3  # conservative for most tokenizers and languages
ANSWER_TOKENS = 512
PROMPT_TOKENS = 200
MAX_CHUNKS = 8
PARALLEL_CALLS = 4

MAP_PROMPT = (
    "Summarize this part of a document in a few sentences. Keep names, numbers and "
    "conclusions. Answer in the document's language, with the summary only."
)
REDUCE_PROMPT = (
    "These are summaries of consecutive parts of one document. Write one summary of the "
    "whole document in at most {sentences} sentences, in the document's language, with "
    "the summary only."
)


class LlmSummarizer:
    def __init__(self, settings: Settings) -> None:
        self.model = settings.llm_model
        self.sentences = settings.summary_sentences
        budget = settings.llm_context_tokens - ANSWER_TOKENS - PROMPT_TOKENS
        self.chunk_chars = max(1000, budget * CHARS_PER_TOKEN)
        self.client = openai.AsyncOpenAI(
            base_url=settings.llm_base_url or None,
            api_key=settings.llm_api_key.get_secret_value() or "not-needed",
            timeout=settings.llm_timeout_s,
            max_retries=0,
        )

    @property
    def source(self) -> str:
        return f"llm:{self.model}"

    async def summarize(self, text: str) -> str:
        chunks = self.chunks(text)
        if len(chunks) == 1:
            return await self._ask(REDUCE_PROMPT.format(sentences=self.sentences), chunks[0])
        limit = asyncio.Semaphore(PARALLEL_CALLS)

        async def summarize_chunk(chunk: str) -> str:
            async with limit:
                return await self._ask(MAP_PROMPT, chunk)

        partials = await asyncio.gather(*(summarize_chunk(chunk) for chunk in chunks))
        combined = "\n\n".join(partials)
        if len(combined) > self.chunk_chars:
            combined = combined[: self.chunk_chars]
        return await self._ask(REDUCE_PROMPT.format(sentences=self.sentences), combined)

    def chunks(self, text: str) -> list[str]:
        """Pieces of at most chunk_chars, cut between sentences; at most MAX_CHUNKS of them."""
        budget = self.chunk_chars * MAX_CHUNKS
        if len(text) > budget:
            # Too long to read whole within a job's time: keep its central sentences.
            wanted = max(MAX_CHUNKS * 4, budget // 200)
            text = summarize_extractive(text, max_sentences=wanted)
        chunks: list[str] = []
        current = ""
        for sentence in split_sentences(text):
            sentence = sentence[: self.chunk_chars]
            if current and len(current) + len(sentence) + 1 > self.chunk_chars:
                chunks.append(current)
                current = ""
            current = f"{current} {sentence}" if current else sentence
        if current:
            chunks.append(current)
        return chunks[:MAX_CHUNKS] or [""]

    async def _ask(self, instruction: str, text: str) -> str:
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=[
                {"role": "system", "content": instruction},
                {"role": "user", "content": text},
            ],
            max_tokens=ANSWER_TOKENS,
            temperature=0.2,
            stream=False,
        )
        content = response.choices[0].message.content if response.choices else None
        if not content or not content.strip():
            raise openai.APIError("the model returned an empty answer", request=None, body=None)  # type: ignore[arg-type]
        return content.strip()

    async def close(self) -> None:
        await self.client.close()
