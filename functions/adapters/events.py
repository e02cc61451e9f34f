"""Publishing the project's events on EventBridge."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import StorageError

MODEL_DRIFT_DETECTED = "ModelDriftDetected"
MODEL_PERFORMANCE_DEGRADED = "ModelPerformanceDegraded"
CANDIDATE_REGISTERED = "CandidateRegistered"
ROLLOUT_FINISHED = "RolloutFinished"


class EventBridgePublisher:
    """Puts one event at a time on the stage's bus and confirms EventBridge accepted it."""

    def __init__(self, events: Any, bus_name: str, source: str) -> None:
        self._events = events
        self.bus_name = bus_name
        self.source = source

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        """Publish and return the event id. Raises ``StorageError`` when the event was not accepted."""
        entry = {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
            "EventBusName": self.bus_name,
        }
        try:
            response = self._events.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"publishing {detail_type} on {self.bus_name} failed") from exc
        result = response["Entries"][0]
        if response.get("FailedEntryCount") or "EventId" not in result:
            raise StorageError(f"EventBridge refused {detail_type}: {result.get('ErrorCode', 'unknown error')}")
        return str(result["EventId"])
