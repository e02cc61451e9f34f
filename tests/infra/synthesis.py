"""The session's synthesized app, as the infra tests read it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import App, Stack
from aws_cdk.assertions import Template

from infra.assets import AssetDirs
from layers.build import LAYER_PACKAGES

STAGES = ("dev", "prod")
ROLES = ("storage", "serving", "monitoring")


@dataclass
class Synthesized:
    """The session's app, its stacks by (stage, role), the cloud assembly and what synthesis reported."""

    app: App
    stacks: dict[tuple[str, str], Stack]
    outdir: Path
    validation_error: str | None
    _templates: dict[tuple[str, str], Template] = field(default_factory=dict)

    def json(self, stage: str, role: str) -> dict[str, Any]:
        """The synthesized template of one stack, as CloudFormation reads it."""
        name = self.stacks[(stage, role)].stack_name
        return dict(json.loads((self.outdir / f"{name}.template.json").read_text()))

    def template(self, stage: str, role: str) -> Template:
        """The ``aws_cdk.assertions`` view of one stack's template (built on first use)."""
        key = (stage, role)
        if key not in self._templates:
            self._templates[key] = Template.from_json(self.json(stage, role))
        return self._templates[key]

    def resources(self, stage: str, role: str, type_: str) -> dict[str, dict[str, Any]]:
        """Logical id -> resource, for every resource of ``type_`` in one stack."""
        return {k: v for k, v in self.json(stage, role)["Resources"].items() if v["Type"] == type_}

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def make_asset_dirs(root: Path) -> AssetDirs:
    """Placeholder layers (``python/`` each) and function package (``functions/``), as ``make layer`` lays them out."""
    for name in LAYER_PACKAGES:
        (root / "layers" / name / "python").mkdir(parents=True)
        (root / "layers" / name / "python" / "placeholder.py").write_text(f"# placeholder for the {name} layer\n")
    (root / "function" / "functions").mkdir(parents=True)
    (root / "function" / "functions" / "__init__.py").write_text('"""placeholder for the functions package"""\n')
    return AssetDirs.under(root).checked()
