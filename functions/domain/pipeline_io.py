"""The scikit-learn pipeline as stored beside the serving graph: skops, with an allow-list, never pickle.

Only training-side code imports this module (retrain, ``mlops train``, the registry upgrade): it
imports scikit-learn and skops, which the predict function never loads.
"""

from __future__ import annotations

import io
from typing import Any

import numpy
import scipy
import sklearn
import skops
import skops.io

from functions.domain.artifacts import verify_artifact
from functions.domain.card import ModelCard
from functions.errors import IncompatibleModelError, UntrustedArtifactError

# Types a stored pipeline may hold beyond skops' own defaults (scikit-learn estimators, numpy arrays,
# builtins): what our pipelines (imputer, scaler, one-hot encoder, linear models, forests, HGB) need.
ALLOWED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)
# A skops file is only reliable when loaded by the scikit-learn (and numpy, scipy) that wrote it.
PINNED_LIBRARIES = ("scikit-learn", "numpy", "scipy")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a stored pipeline depends on, as installed here."""
    return {
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "skops": skops.__version__,
    }


def dump_pipeline(pipeline: Any) -> bytes:
    """Serialise a fitted pipeline with skops (refusing, at save time, a type the loader would refuse)."""
    data = skops.io.dumps(pipeline, compression=8)
    refused = [t for t in skops.io.get_untrusted_types(data=data) if t not in ALLOWED_TYPES]
    if refused:
        raise UntrustedArtifactError(f"the pipeline holds types outside the allow-list: {', '.join(refused)}")
    return data


def check_compatible(card: ModelCard, installed: dict[str, str] | None = None) -> None:
    """Refuse a pipeline saved by other versions of scikit-learn, numpy or scipy.

    Raises:
        IncompatibleModelError: naming each library whose version differs.
    """
    installed = installed or library_versions()
    mismatches = [
        f"{lib} {card.libraries.get(lib, '?')} (this runtime has {installed[lib]})"
        for lib in PINNED_LIBRARIES
        if card.libraries.get(lib) != installed[lib]
    ]
    if mismatches:
        raise IncompatibleModelError(
            f"model {card.name!r} version {card.version} was saved with "
            + ", ".join(mismatches)
            + "; load it with the same versions or retrain it"
        )


def load_pipeline(data: bytes, card: ModelCard) -> Any:
    """Verify ``data`` against the card, then load it with skops, allowing only ``ALLOWED_TYPES`` beyond the defaults.

    Raises:
        ArtifactIntegrityError: the bytes are not the artifact the card describes.
        UntrustedArtifactError: the card names a pickle, or the file asks for a type outside the allow-list.
        IncompatibleModelError: the pipeline was saved by other library versions.
    """
    ref = card.artifacts["pipeline"]
    if ref.format != "skops":
        raise UntrustedArtifactError(
            f"model {card.name!r} version {card.version} stores its pipeline as {ref.format}, which can run code "
            "when loaded; only skops files are loaded (an operator converts old versions with `mlops upgrade-registry`)"
        )
    verify_artifact(data, ref, card)
    check_compatible(card)
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - any parse failure of a verified file is a refusal, not a crash
        raise UntrustedArtifactError(f"{ref.file} of version {card.version} is not a skops file: {exc}") from exc
    refused = [t for t in untrusted if t not in ALLOWED_TYPES]
    if refused:
        raise UntrustedArtifactError(
            f"{ref.file} of model {card.name!r} version {card.version} asks to load types outside the allow-list: "
            + ", ".join(refused)
        )
    return skops.io.loads(data, trusted=list(untrusted))


def load_vouched_pickle(data: bytes, expected_sha256: str) -> Any:
    """Unpickle a legacy joblib artifact whose SHA-256 an operator vouches for (``mlops upgrade-registry`` only).

    A pickle runs code when loaded: this is the one place the project opens one, and only on an
    operator's explicit request, after the bytes matched the SHA-256 the version's card recorded.
    """
    import hashlib

    import joblib

    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise UntrustedArtifactError(
            f"the pickled artifact's SHA-256 is {digest}, its card records {expected_sha256}; not opening it"
        )
    return joblib.load(io.BytesIO(data))
