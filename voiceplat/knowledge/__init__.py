"""A robot's knowledge files: passages, Russian lemmas, BM25 retrieval (issue 12).

`load_knowledge` (index.py) builds the index when the robot starts; per turn `direct_answer`
may give an FAQ answer to speak as is, else `search` finds passages and `grounded_message`
(grounding.py) makes the user message the LLM answers. `knowledge_problems` is for
`voiceplat check`.
"""

from voiceplat.knowledge.grounding import grounded_message
from voiceplat.knowledge.index import Hit, KnowledgeBase, knowledge_problems, load_knowledge
from voiceplat.knowledge.passages import Passage
from voiceplat.knowledge.settings import KnowledgeSettings

__all__ = [
    "Hit",
    "KnowledgeBase",
    "KnowledgeSettings",
    "Passage",
    "grounded_message",
    "knowledge_problems",
    "load_knowledge",
]
