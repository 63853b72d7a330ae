"""Finding the nsys executable: PATH, $NSYS, the CUDA toolkit and the standalone installs."""

from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass

CANDIDATE_GLOBS = (
    "/usr/local/cuda/bin/nsys",
    "/opt/nvidia/nsight-systems/*/bin/nsys",
    "/opt/nvidia/nsight-systems-cli/*/bin/nsys",
    "/usr/local/cuda-*/bin/nsys",
    "/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys",
)


@dataclass(frozen=True)
class NsysLocation:
    path: str
    how: str  # "PATH", "$NSYS" or "off PATH"

    @property
    def on_path(self) -> bool:
        return self.how == "PATH"


def find_nsys(env: dict[str, str] | None = None) -> NsysLocation | None:
    """Where nsys is, or None. ``$NSYS`` wins, then PATH, then the usual install locations."""
    env = dict(os.environ) if env is None else env
    explicit = env.get("NSYS")
    if explicit and os.path.isfile(explicit) and os.access(explicit, os.X_OK):
        return NsysLocation(explicit, "$NSYS")
    on_path = shutil.which("nsys", path=env.get("PATH", ""))
    if on_path:
        return NsysLocation(on_path, "PATH")
    for pattern in CANDIDATE_GLOBS:
        for hit in sorted(glob.glob(pattern), reverse=True):  # newest version first
            if os.access(hit, os.X_OK):
                return NsysLocation(hit, "off PATH")
    return None
