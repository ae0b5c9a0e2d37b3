"""What the demo registers: the seed's QA program and a small golden dataset."""

from __future__ import annotations

from typing import Any

SIGNATURE = "question: str, context: str -> answer: str, confidence: float"
INSTRUCTIONS = "Answer from the context only, in as few words as possible."
FIELD_DESCRIPTIONS = {"confidence": "between 0 and 1"}

EXAMPLES: list[dict[str, Any]] = [
    {
        "question": "Who wrote Hamlet?",
        "context": "Hamlet is a tragedy by William Shakespeare.",
        "answer": "William Shakespeare",
        "confidence": 1.0,
    },
    {
        "question": "What is the capital of France?",
        "context": "Paris is the capital of France.",
        "answer": "Paris",
        "confidence": 1.0,
    },
    {
        "question": "How many legs does a spider have?",
        "context": "Spiders are arachnids with eight legs.",
        "answer": "eight",
        "confidence": 1.0,
    },
    {
        "question": "What gas do plants absorb?",
        "context": "Plants absorb carbon dioxide and release oxygen.",
        "answer": "carbon dioxide",
        "confidence": 1.0,
    },
    {
        "question": "Which planet is the largest?",
        "context": "Jupiter is the largest planet in the Solar System.",
        "answer": "Jupiter",
        "confidence": 1.0,
    },
    {
        "question": "What is the boiling point of water at sea level?",
        "context": "At sea level water boils at 100 degrees Celsius.",
        "answer": "100 degrees Celsius",
        "confidence": 1.0,
    },
    {
        "question": "Who painted the Mona Lisa?",
        "context": "The Mona Lisa was painted by Leonardo da Vinci.",
        "answer": "Leonardo da Vinci",
        "confidence": 1.0,
    },
    {
        "question": "What is the chemical symbol for gold?",
        "context": "Gold has the chemical symbol Au.",
        "answer": "Au",
        "confidence": 1.0,
    },
    {
        "question": "What is the largest ocean?",
        "context": "The Pacific is the largest and deepest ocean on Earth.",
        "answer": "Pacific",
        "confidence": 1.0,
    },
    {
        "question": "Who developed the theory of relativity?",
        "context": "Albert Einstein developed the theory of relativity.",
        "answer": "Albert Einstein",
        "confidence": 1.0,
    },
    {
        "question": "How many continents are there?",
        "context": "Geographers usually count seven continents.",
        "answer": "seven",
        "confidence": 1.0,
    },
    {
        "question": "What is the hardest natural material?",
        "context": "Diamond is the hardest natural material.",
        "answer": "Diamond",
        "confidence": 1.0,
    },
]

FIRST_QUESTION = {
    "question": "Which river flows through Cairo?",
    "context": "Cairo, the capital of Egypt, lies on the banks of the Nile.",
}
SECOND_QUESTION = {
    "question": "What language is spoken in Brazil?",
    "context": "Portuguese is the official language of Brazil.",
}
