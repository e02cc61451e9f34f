"""The drift verdict's thresholds, in one place: the domain's ``DriftPolicy``, and the defaults the stage
configuration (``functions/config.py``) and the function settings (``functions/settings.py``) take from it.

Pydantic only (no numpy or scipy), so the configuration, the CDK app and the settings can import it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_PERFORMANCE_TOLERANCE = 0.05
Correction = Literal["benjamini_hochberg", "bonferroni"]


class DriftPolicy(BaseModel):
    """Thresholds of the drift verdict.

    A feature drifts when its PSI reaches ``psi_drift`` (a large shift, whatever the test says),
    or when its corrected test rejects at ``p_value_alpha`` *and* its PSI reaches
    ``psi_warning``. The test alone is not enough: on thousands of rows KS and chi-square
    reject shifts far too small to matter, so a moderate effect size is required as well.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi_warning: float = Field(default=0.1, gt=0)
    psi_drift: float = Field(default=0.2, gt=0)
    p_value_alpha: float = Field(default=0.05, gt=0, lt=1)
    correction: Correction = "benjamini_hochberg"
    min_rows: int = Field(default=200, ge=1)
    performance_tolerance: float = Field(default=DEFAULT_PERFORMANCE_TOLERANCE, ge=0)
    prediction_psi_drift: float = Field(default=0.2, gt=0)

    @model_validator(mode="after")
    def _warning_below_drift(self) -> DriftPolicy:
        if self.psi_warning > self.psi_drift:
            raise ValueError("psi_warning must not exceed psi_drift")
        return self


def drift_default(name: str) -> Any:
    """The default of one ``DriftPolicy`` field, for the configuration and the settings."""
    return DriftPolicy.model_fields[name].default
