"""Decision mode (`ask --choices billing,technical,other "…"`): exactly one label, and the
probability of every label, computed from the model's logits — each label's whole token
sequence scored (engine/scoring.py), the shared prompt evaluated once, nothing sampled.
Classifying thousands of texts is the commonest scripted job; every other tool makes the
model write its label and reports no confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hermes_cli.errors import UsageError
from hermes_cli.prompt.messages import Message

if TYPE_CHECKING:  # light to import: the config checks a role's labels with check_labels
    from hermes_cli.core.backends import Backend

MAX_LABELS = 64


def parse_choices(spec: str, name: str = "--choices") -> list[str]:
    """`a,b,c` as labels: trimmed, unique, at least two; UsageError naming the problem
    (and `name`, how they were given: `--choices`, `/choices`)."""
    return check_labels([part.strip() for part in spec.split(",")], f"{name} {spec!r}")


def check_labels(labels: object, where: str) -> list[str]:
    """The labels of `--choices` or a batch line's `"choices"`, checked."""
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise UsageError(f"{where}: choices must be a list of labels")
    if any(not label.strip() for label in labels):
        raise UsageError(f"{where}: a label is empty", hint="separate labels by commas: --choices yes,no")
    if len(set(labels)) != len(labels):
        raise UsageError(f"{where}: a label appears twice")
    if not 2 <= len(labels) <= MAX_LABELS:
        raise UsageError(f"{where}: 2 to {MAX_LABELS} labels, not {len(labels)}")
    return labels


def instruction(labels: list[str]) -> str:
    """The system prompt's line that tells the model how its answer is read."""
    return "Answer with exactly one of these labels and nothing else: " + ", ".join(labels) + "."


def decision_messages(system: str | None, question: str, labels: list[str]) -> list[Message]:
    system_text = instruction(labels) if not system else f"{system}\n\n{instruction(labels)}"
    return [Message("system", system_text), Message("user", question)]


@dataclass(frozen=True)
class Decision:
    label: str
    probabilities: dict[str, float]


def decide(backend: Backend, messages: list[Message], labels: list[str]) -> Decision:
    """The most probable label, and every label's probability (summing to 1)."""
    probs = backend.choice_probabilities(messages, labels)
    best = max(range(len(labels)), key=probs.__getitem__)
    return Decision(labels[best], dict(zip(labels, probs)))
