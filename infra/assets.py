"""Where the Lambda code and layer assets come from: ``make layer``'s output, or directories a test names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from layers.build import LAYER_PACKAGES

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "layers" / "build"


class MissingAssetsError(RuntimeError):
    """A layer or the function asset directory is missing or does not have the expected layout."""


@dataclass(frozen=True)
class AssetDirs:
    """``layers/<name>/`` (each holding ``python/``) and ``function/`` (holding the ``functions`` package)."""

    layers: Mapping[str, Path]
    function: Path

    @classmethod
    def under(cls, root: Path | str) -> AssetDirs:
        """The layout ``python -m layers.build`` writes: ``<root>/layers/<name>`` and ``<root>/function``."""
        base = Path(root)
        return cls(layers={name: base / "layers" / name for name in LAYER_PACKAGES}, function=base / "function")

    def checked(self) -> AssetDirs:
        """Self, once every directory exists with the layout Lambda expects; ``MissingAssetsError`` otherwise."""
        expected = [*(path / "python" for path in self.layers.values()), self.function / "functions" / "__init__.py"]
        missing = [str(path) for path in expected if not path.exists()]
        if missing:
            raise MissingAssetsError(
                "Lambda assets not found: "
                + ", ".join(missing)
                + ". Run `make layer` (python -m layers.build) first; it writes layers/build/layers/<name> and"
                " layers/build/function. Tests may pass `-c asset_dirs=<dir>` with the same layout."
            )
        return self


def asset_dirs(context_value: object | None) -> AssetDirs:
    """The asset directories for a synthesis: CDK context ``asset_dirs`` if given, else ``layers/build``."""
    root = Path(str(context_value)) if context_value else BUILD
    return AssetDirs.under(root).checked()
