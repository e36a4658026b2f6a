"""The `knowledge` section of a robot's config.json: which files the robot answers from and how.

Only the shape is checked here. Whether the files exist, are UTF-8 and small enough is
`knowledge_problems` (voiceplat/knowledge/index.py), which `voiceplat check` prints: a config stays
valid when the knowledge files are edited or missing.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_FILES = ["knowledge.md", "knowledge/*.md", "knowledge/*.txt"]

DEFAULT_SYNONYMS = [
    ["цена", "стоимость", "стоить", "прайс", "расценка", "почем", "рубль", "обойтись"],
    ["адрес", "находиться", "расположение", "добраться", "доехать", "проезд"],
    ["записаться", "запись", "записать"],
    ["отменить", "отмена", "перенести", "перенос"],
    ["ребенок", "детский"],
    ["оплата", "оплатить", "платить", "платный"],
    ["парковка", "припарковаться", "стоянка"],
    ["график", "расписание", "режим"],
    ["прием", "принимать"],
    ["работать", "работа", "открываться", "открыть", "закрываться", "открытый"],
    ["будни", "будний"],
    ["страховка", "страхование", "страховой"],
]
"""Words a caller uses for what a knowledge file says otherwise: one term for retrieval."""

DEFAULT_INSTRUCTION = (
    "Ответь на вопрос клиента только по справке ниже, коротко, одним-двумя предложениями. "
    "Не придумывай цифры, цены, имена, даты и правила, которых нет в справке. "
    "Если в справке нет ответа, скажи, что не знаешь точно, и предложи соединить "
    "с администратором."
)


class KnowledgeSettings(BaseModel):
    """Grounded answers: passages of the robot's knowledge files given to the LLM on each turn."""

    model_config = ConfigDict(extra="forbid")

    files: list[str] = Field(
        default_factory=lambda: list(DEFAULT_FILES),
        description=(
            "Glob patterns, relative to the robot folder, of the knowledge files (Markdown or "
            "plain text, UTF-8). No file matching: the robot answers without a reference."
        ),
    )
    top_k: int = Field(3, ge=1, le=10, description="Passages given to the LLM per turn, at most.")
    max_prompt_chars: int = Field(
        600,
        ge=100,
        le=20000,
        description=(
            "All passages of one turn together, at most (the best one is cut to fit): every "
            "character is prompt the LLM evaluates before it answers (a local model on two "
            "cores: ~2.5 characters a token, ~50 tokens a second)."
        ),
    )
    reference: Literal["passages", "sentences"] = Field(
        "passages",
        description=(
            "What the LLM is given: the passages retrieval finds, or the `top_k` sentences of "
            "the knowledge files that match the caller's words best (as fact answers rank "
            "them): a prompt a third as long, so a local model answers seconds sooner."
        ),
    )
    max_passage_chars: int = Field(
        700,
        ge=200,
        le=4000,
        description="Longer sections are split by paragraph, then sentence, to this size.",
    )
    max_total_kb: int = Field(
        512,
        ge=1,
        le=16384,
        description="All knowledge files together may be at most this size (KiB).",
    )
    min_score: float = Field(
        0.15,
        ge=0,
        description=(
            "Score a passage needs to be given to the LLM at all: BM25 scaled so that each "
            "word only one passage has counts ~0.4 when matched, in a small file or a large one."
        ),
    )
    min_relative_score: float = Field(
        0.3,
        ge=0,
        le=1,
        description="A passage under this share of the best passage's score is left out.",
    )
    direct_answers: bool = Field(
        True,
        description=(
            "Speak an FAQ answer as written, without the LLM, when retrieval is confident "
            "(the direct_* settings)."
        ),
    )
    direct_min_score: float = Field(
        0.3, ge=0, description="Score (as min_score) an FAQ passage needs to be spoken directly."
    )
    direct_margin: float = Field(
        1.5,
        ge=1,
        description=(
            "How much better the best FAQ question must match the caller's words than the next "
            "best FAQ question (ratio of idf-weighted word overlaps)."
        ),
    )
    direct_coverage: float = Field(
        0.75,
        ge=0,
        le=1,
        description=(
            "Share of the caller's content words the FAQ question must contain. A word the "
            "question lacks but other passages have is never allowed (a more specific question)."
        ),
    )
    direct_question_coverage: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Share of the FAQ question's content words the caller must have said.",
    )
    fact_answers: bool = Field(
        False,
        description=(
            "Say the one or two sentences of the knowledge files that answer the caller, as "
            "written, without the LLM, when the caller's words point at them clearly (the "
            "facts_* settings). Suits files written as one fact per sentence or list line."
        ),
    )
    facts_min_score: float = Field(
        0.8,
        ge=0,
        description=(
            "How well the best sentence must match the caller's words: the idf of the words "
            "they share, over the largest (a word only one sentence has counts 1; a word of "
            "its heading half)."
        ),
    )
    facts_min_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            "Share (idf-weighted) of the caller's words that the knowledge has which the "
            "sentence (or its heading) must have."
        ),
    )
    facts_unknown_noun_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description=(
            'When the caller names something the knowledge lacks ("холтер"), the sentences must '
            "hold more than this share of the nouns they said, or the LLM answers."
        ),
    )
    unsure_text: str | None = Field(
        None,
        description=(
            "Said instead of an LLM answer to a question that names something the knowledge "
            "files never mention («холтер», «сертификат») when neither an FAQ answer nor a fact "
            "answer is certain, e.g. «Точно не подскажу. "
            "Соединить вас с администратором?». A «да» right after it transfers the call when "
            "transfer.target is set. None: the LLM answers from the passages found."
        ),
    )
    synonyms: list[list[str]] = Field(
        default_factory=list,
        description=(
            "More groups of words retrieval treats as one (any form: they are lemmatised), e.g. "
            '["натощак", "голодать"]; added to the default groups.'
        ),
    )
    default_synonyms: bool = Field(
        True,
        description="Use the built-in groups (цена/стоимость/стоить, адрес/находиться/добраться, ...).",
    )
    lookup_text: str | None = Field(
        None,
        description="said at once before an answer the LLM writes from passages (e.g. "
        "«Сейчас посмотрю…»): a local LLM on two cores reads 400 characters of them in seconds; "
        "None: nothing is said",
    )
    lookup_min_chars: int = Field(
        200, ge=0, description="passages shorter than this are read quickly: no lookup_text"
    )
    question_prefix: str = Field(
        "Вопрос (если в справке нет ответа, так и скажи): ",
        description="put before the caller's words, after the passages: the instruction repeated "
        "where a small model reads it last (each character costs prompt time on every turn)",
    )
    instruction: str = Field(
        DEFAULT_INSTRUCTION,
        min_length=1,
        description="What the LLM is told before the passages on every turn.",
    )

    @field_validator("files")
    @classmethod
    def _relative_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            path = PurePosixPath(pattern)
            if not pattern.strip() or path.is_absolute() or ".." in path.parts:
                raise ValueError(
                    f"{pattern!r} must be a glob relative to the robot folder, "
                    'e.g. "knowledge/*.md" (no absolute paths, no "..")'
                )
        return patterns

    @field_validator("synonyms")
    @classmethod
    def _groups(cls, groups: list[list[str]]) -> list[list[str]]:
        for group in groups:
            if len(group) < 2:
                raise ValueError(f"{group!r}: a synonym group needs two words or more")
            for word in group:
                if len(word.split()) != 1:
                    raise ValueError(f"{word!r} in {group!r}: a synonym is one word")
        return groups

    def synonym_groups(self) -> list[list[str]]:
        """The groups in force: the defaults (unless turned off) and the robot's own."""
        defaults = DEFAULT_SYNONYMS if self.default_synonyms else []
        return [list(group) for group in defaults] + [list(group) for group in self.synonyms]
