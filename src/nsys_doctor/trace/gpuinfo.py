"""The GPUs a trace describes, read with the stdlib sqlite3 driver only (``info`` needs no polars)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .open import Trace

# Column -> Python type of its values (None: unknown). ``tables.GPU_COLUMNS`` gives the polars types.
GPU_FIELDS: dict[str, type] = {
    "deviceId": int,
    "name": str,
    "chipName": str,
    "busLocation": str,
    "smCount": int,
    "totalMemory": int,
    "memoryBandwidth": int,
    "clockRate": int,
    "l2CacheSize": int,
    "computeMajor": int,
    "computeMinor": int,
}


def gpu_value(column: str, value: object) -> int | str | None:
    """A GPU-table cell as its column's type (text in a number column, a BLOB anywhere: unknown)."""
    if GPU_FIELDS[column] is str:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return int(value) if -(2**63) <= value < 2**63 else None


def gpu_rows(trace: Trace) -> list[dict[str, object]]:
    """One dict per GPU, by deviceId: deviceId, name, chipName, busLocation, smCount, totalMemory (B),
    memoryBandwidth (B/s), clockRate (Hz), l2CacheSize (B), computeMajor, computeMinor. Unknown values are None."""
    sch = trace.schema
    rows: dict[int, dict[str, object]] = {}
    if sch.has_column("TARGET_INFO_GPU", "id"):
        want = [c for c in GPU_FIELDS if c != "deviceId" and sch.has_column("TARGET_INFO_GPU", c)]
        sql = f"SELECT {', '.join(['id', *want])} FROM TARGET_INFO_GPU WHERE typeof(id) = 'integer'"
        for rec in trace.rows(sql):
            rows.setdefault(int(rec[0]), {"deviceId": int(rec[0]), **dict(zip(want, rec[1:], strict=True))})
    elif sch.has_column("TARGET_INFO_GPU", "deviceId"):
        want = [c for c in ("name", "busLocation") if sch.has_column("TARGET_INFO_GPU", c)]
        sql = f"SELECT {', '.join(['deviceId', *want])} FROM TARGET_INFO_GPU WHERE typeof(deviceId) = 'integer'"
        for rec in trace.rows(sql):
            rows.setdefault(int(rec[0]), {"deviceId": int(rec[0]), **dict(zip(want, rec[1:], strict=True))})
    legacy = (
        "deviceId",
        "name",
        "numMultiprocessors",
        "globalMemorySize",
        "globalMemoryBandwidth",
        "coreClockRate",
        "l2CacheSize",
        "computeCapabilityMajor",
        "computeCapabilityMinor",
    )
    if all(sch.has_column("TARGET_INFO_CUDA_GPU", c) for c in legacy):  # 2021-era: bandwidth in kB/s, clock in kHz
        q = f"SELECT {', '.join(legacy)} FROM TARGET_INFO_CUDA_GPU WHERE typeof(deviceId) = 'integer'"
        for dev, name, sms, mem, bw, clk, l2, cmaj, cmin in trace.rows(q):
            r = rows.setdefault(int(dev), {"deviceId": int(dev), "name": name})
            bw, clk = gpu_value("memoryBandwidth", bw), gpu_value("clockRate", clk)
            r.update(
                smCount=sms,
                totalMemory=mem,
                memoryBandwidth=None if bw is None else int(bw) * 1000,
                clockRate=None if clk is None else int(clk) * 1000,
                l2CacheSize=l2,
                computeMajor=cmaj,
                computeMinor=cmin,
            )
    return [{c: gpu_value(c, r.get(c)) for c in GPU_FIELDS} for _, r in sorted(rows.items())]
