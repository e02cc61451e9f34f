"""CodeDeploy's deployments of the predict alias, as the rollout controller needs to see them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import MlopsError, StorageError

# Every status of a deployment that has not ended (Succeeded, Failed and Stopped have): one queued or
# created has not moved any alias weight yet, but will.
UNFINISHED_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")


class CodeDeployError(MlopsError):
    """CodeDeploy refused to list the deployment group's deployments (a missing group, a missing right)."""

    code = "codedeploy_error"


class CodeDeployWatcher:
    """Lists the code deployments of one deployment group that have not ended."""

    def __init__(self, client: Any, application_name: str, deployment_group_name: str) -> None:
        self._client = client
        self.application_name = application_name
        self.deployment_group_name = deployment_group_name

    @property
    def group(self) -> str:
        return f"{self.application_name}/{self.deployment_group_name}"

    def in_progress(self) -> list[str]:
        """The ids of the group's deployments that are created, queued, in progress, baking or ready.

        Raises:
            CodeDeployError: CodeDeploy refused the request.
            StorageError: CodeDeploy could not be reached.
        """
        ids: list[str] = []
        try:
            paginator = self._client.get_paginator("list_deployments")
            for page in paginator.paginate(
                applicationName=self.application_name,
                deploymentGroupName=self.deployment_group_name,
                includeOnlyStatuses=list(UNFINISHED_STATUSES),
            ):
                ids.extend(page.get("deployments", []))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise CodeDeployError(f"codedeploy list_deployments on {self.group} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"codedeploy list_deployments on {self.group} failed: {type(exc).__name__}") from exc
        return ids
