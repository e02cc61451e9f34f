"""Recording ground truth for earlier predictions."""

from __future__ import annotations

from dataclasses import dataclass

from functions.adapters.outcomes import S3OutcomeStore
from functions.domain.card import ModelCard
from functions.domain.outcomes import parse_outcomes
from functions.domain.requests import decode_object


@dataclass
class OutcomeResult:
    accepted: int
    newly_stored: bool


def record_outcomes(
    body: str | bytes | None, card: ModelCard, store: S3OutcomeStore, max_outcomes: int
) -> OutcomeResult:
    """Validate outcomes against ``card``'s task and store them; returns once the write is confirmed."""
    outcomes = parse_outcomes(decode_object(body), card, max_outcomes)
    newly = store.put_batch(card.name, outcomes)
    return OutcomeResult(accepted=len(outcomes), newly_stored=newly)
