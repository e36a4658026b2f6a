"""A robot's knowledge files: passages, Russian lemmas, BM25 retrieval (issue 12).

`load_knowledge` (index.py) builds the index when the robot starts; per turn `direct_answer`
may give an FAQ answer to speak as is, else `search` finds passages and `grounded_message`
(grounding.py) makes the user message the LLM answers. `knowledge_problems` is for
`voiceplat check`.
"""
