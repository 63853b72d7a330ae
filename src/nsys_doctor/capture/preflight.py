"""``nsys-doctor check``: will a capture work here? nsys, the profiling environment, the GPU and the toolkit.

The parsers (``parse_*``) are pure functions tested on real tool output; ``preflight()`` runs the tools through a
``Runner`` (replaceable in tests) and turns what they said into ``Check`` lines with a status and a fix.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import overload

from ..errors import NsysDoctorError
from ..trace.nsysbin import NsysLocation, find_nsys

# (exit code, stdout+stderr); exit code 127 when the program is missing, 124 when it timed out
Runner = Callable[[Sequence[str], float], tuple[int, str]]

NVCC_CANDIDATES = ("/usr/local/cuda/bin/nvcc", "/usr/local/cuda-*/bin/nvcc")
NVIDIA_PARAMS = "/proc/driver/nvidia/params"
GPU_QUERY = "index,name,driver_version,memory.total,compute_cap"


def run_tool(argv: Sequence[str], timeout: float = 30.0) -> tuple[int, str]:
    try:
        p = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, errors="replace", stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except PermissionError:
        return 126, f"{argv[0]}: permission denied"
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]}: timed out after {timeout:.0f} s"
    return p.returncode, (p.stdout or "") + (p.stderr or "")


class CheckFailed(NsysDoctorError):
    """``check`` found something that stops a capture: one line, exit code 1."""

    exit_code = 1


# ------------------------------------------------------------------------------------------------- parsers


def parse_nsys_version(text: str) -> str | None:
    """``NVIDIA Nsight Systems version 2025.3.1.90-253135822126v0`` -> ``2025.3.1.90-253135822126v0``."""
    m = re.search(r"Nsight Systems version\s+(\S+)", text)
    if m:
        return m.group(1)
    m = re.search(r"\b(20\d\d\.\d+\.\d+[\w.\-]*)", text)
    return m.group(1) if m else None


class _Verdict:
    """A ``StatusEnv`` attribute: nsys's verdict on the line starting with ``label`` (True ok, False failed, None
    absent or unclear)."""

    def __init__(self, label: str) -> None:
        self.label = label

    @overload
    def __get__(self, env: None, owner: type[StatusEnv]) -> _Verdict: ...
    @overload
    def __get__(self, env: StatusEnv, owner: type[StatusEnv] | None = None) -> bool | None: ...
    def __get__(self, env: StatusEnv | None, owner: type[StatusEnv] | None = None) -> _Verdict | bool | None:
        return self if env is None else env._ok(env._get(self.label))


@dataclass(frozen=True)
class StatusEnv:
    """``nsys status -e``: the CPU profiling environment check."""

    fields: dict[str, str]

    def _get(self, prefix: str) -> str | None:
        for k, v in self.fields.items():
            if k.lower().startswith(prefix.lower()):
                return v
        return None

    @staticmethod
    def _ok(value: str | None) -> bool | None:
        if value is None:
            return None
        v = value.lower()
        if v.endswith(("fail", "failed", "not available", "no")) or "fail" in v:
            return False
        if v.endswith(("ok", "yes", "enabled", "available")):
            return True
        return None

    @property
    def paranoid_level(self) -> int | None:
        v = self._get("Linux Kernel Paranoid Level")
        m = re.match(r"\s*(-?\d+)", v or "")
        return int(m.group(1)) if m else None

    @property
    def root(self) -> bool | None:
        v = self._get("Root privilege")
        return None if v is None else v.strip().lower().startswith("enabled")

    timestamp_counter = _Verdict("Timestamp counter supported")
    perf_event = _Verdict("Linux perf_event_open syscall available")
    sampling_trigger = _Verdict("Sampling trigger event available")
    lbr = _Verdict("Intel(c) Last Branch Record support")
    # nsys's verdict for profiling the launched process tree (what `nsys profile` does)
    cpu_profiling = _Verdict("CPU Profiling Environment (process-tree)")
    system_wide = _Verdict("CPU Profiling Environment (system-wide)")


_STATUS_LINE = re.compile(r"^(.*?)\s*[:=]\s*(.*)$")


def parse_status_env(text: str) -> StatusEnv:
    """Lines ``Key: value`` or ``Key = value`` (the paranoid level uses ``=``); headers and the docs pointer that
    follows are skipped."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or "http" in line or line.lower().startswith("see "):
            continue
        m = _STATUS_LINE.match(line)
        if m and m.group(1):
            fields.setdefault(m.group(1).strip(), m.group(2).strip())
    return StatusEnv(fields)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str
    memory: str
    compute_cap: str | None

    @property
    def consumer(self) -> bool:
        return bool(re.search(r"GeForce|TITAN", self.name, re.I))


def parse_nvidia_smi_query(text: str) -> list[Gpu]:
    """``nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv,noheader``."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        cap = parts[4] if len(parts) > 4 and parts[4] and not parts[4].startswith("[") else None
        gpus.append(Gpu(int(parts[0]), parts[1], parts[2], parts[3], cap))
    return gpus


def parse_nvidia_smi_cuda(text: str) -> str | None:
    """The CUDA version the driver supports, from the header of plain ``nvidia-smi``."""
    m = re.search(r"CUDA Version:\s*([\d.]+)", text)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Nvcc:
    release: str  # "12.8"
    build: str | None  # "V12.8.93"


def parse_nvcc_version(text: str) -> Nvcc | None:
    """``Cuda compilation tools, release 12.8, V12.8.93``."""
    m = re.search(r"release\s+([\d.]+)(?:,\s*(V[\w.]+))?", text)
    return Nvcc(m.group(1), m.group(2)) if m else None


def parse_nvidia_params(text: str) -> dict[str, str]:
    """``/proc/driver/nvidia/params``: ``Name: value`` lines (``RmProfilingAdminOnly: 1`` restricts GPU counters)."""
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


# ------------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # "ok", "warn", "fail", "info"
    message: str
    hint: str = ""


@dataclass
class Preflight:
    checks: list[Check] = field(default_factory=list)
    nsys: NsysLocation | None = None
    nsys_version: str | None = None
    status: StatusEnv | None = None
    gpus: list[Gpu] = field(default_factory=list)
    cuda_driver: str | None = None
    toolkit: Nvcc | None = None

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def versions(self) -> dict[str, str | None]:
        return {
            "nsys": self.nsys_version,
            "nsys_path": self.nsys.path if self.nsys else None,
            "driver": self.gpus[0].driver if self.gpus else None,
            "cuda_driver": self.cuda_driver,
            "toolkit": self.toolkit.release if self.toolkit else None,
            "toolkit_build": self.toolkit.build if self.toolkit else None,
            "gpu": self.gpus[0].name if self.gpus else None,
        }


def path_fix(location: NsysLocation) -> str:
    """The one line that puts an off-PATH nsys on PATH."""
    return f'export PATH="{os.path.dirname(location.path)}:$PATH"'


def nsys_checks(location: NsysLocation | None) -> list[Check]:
    if location is None:
        return [
            Check(
                "nsys",
                "fail",
                "nsys not found (looked in PATH, $NSYS, /usr/local/cuda/bin, /opt/nvidia/nsight-systems/*/bin and "
                "Nsight Compute's bundled copy)",
                "install Nsight Systems (or the CUDA toolkit), or point NSYS at the executable: "
                "export NSYS=/path/to/nsys",
            )
        ]
    bundled = " (the copy bundled with Nsight Compute)" if "nsight-compute" in location.path else ""
    if location.how == "off PATH":
        return [
            Check(
                "nsys",
                "warn",
                f"found {location.path}{bundled} but not on PATH: nsys-doctor uses it, a plain `nsys` in this "
                "shell (SSH, tmux: ~/.bashrc not sourced) does not",
                path_fix(location),
            )
        ]
    return [Check("nsys", "ok", f"{location.path} ({location.how}){bundled}")]


def status_checks(env: StatusEnv) -> list[Check]:
    """What ``nsys status -e`` means for a capture (none of it stops CUDA tracing).

    Seen on nsys 2025.3.1 with paranoid level 2: as root everything is OK; without root nsys still reports the
    process tree OK (user-space sampling of the launched processes) and system-wide sampling as Fail. Levels
    above 2 fail the process tree too: no CPU sampling at all."""
    out: list[Check] = []
    level, root = env.paranoid_level, env.root
    still = "CUDA, NVTX, OS runtime tracing and GPU metrics still work"
    fix = "sudo sysctl -w kernel.perf_event_paranoid=1 (or run nsys as root); --lighter turns sampling off"
    if level is not None:
        if level > 1 and not root:
            if env.cpu_profiling is False or env.cpu_profiling is None:
                msg = (
                    f"kernel paranoid level {level} > 1 without root: no CPU sampling, so no --backtrace "
                    f"(--cudabacktrace) and no sampled call stacks; {still}"
                )
            else:
                msg = (
                    f"kernel paranoid level {level} > 1 without root: only the launched process tree is sampled "
                    "(user space; nsys says process-tree OK), no system-wide or kernel-mode samples; " + still
                )
            out.append(Check("paranoid", "warn", msg, fix))
        elif level > 1:
            out.append(
                Check("paranoid", "ok", f"kernel paranoid level {level}, but running as root: CPU sampling works")
            )
        else:
            out.append(Check("paranoid", "ok", f"kernel paranoid level {level}: CPU sampling works"))
    if env.cpu_profiling is False:
        if not any(c.name == "paranoid" and c.status == "warn" for c in out):
            out.append(
                Check(
                    "cpu-profiling",
                    "warn",
                    f"nsys says the CPU profiling environment fails: no CPU sampling or backtraces; {still}",
                    "see `nsys status -e` for the failing item",
                )
            )
    elif env.cpu_profiling:
        wide = "" if env.system_wide is not False else " (system-wide: Fail)"
        out.append(Check("cpu-profiling", "ok", f"CPU profiling environment (process tree): OK{wide}"))
    if env.timestamp_counter is False:
        out.append(
            Check("timestamps", "warn", "timestamp counter not supported: CPU and GPU timelines may drift apart")
        )
    if env.lbr is False:
        out.append(Check("lbr", "info", "no Last Branch Record support: use --backtrace with fp or dwarf unwinding"))
    if not env.fields:
        out.append(Check("status", "warn", "could not read `nsys status -e`", "run it by hand to see why"))
    return out


def gpu_checks(rc: int, text: str, params: dict[str, str], root: bool) -> tuple[list[Check], list[Gpu]]:
    if rc == 127:
        return [
            Check(
                "gpu",
                "fail",
                "nvidia-smi not found: no NVIDIA driver here, so nothing to trace",
                "run on the GPU machine (or install the NVIDIA driver)",
            )
        ], []
    gpus = parse_nvidia_smi_query(text) if rc == 0 else []
    if not gpus:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "no output")
        return [
            Check("gpu", "fail", f"nvidia-smi sees no GPU ({first})", "check the driver (nvidia-smi) and the container")
        ], []
    out = [
        Check(
            "gpu",
            "ok",
            "; ".join(
                f"GPU {g.index}: {g.name}, {g.memory}, driver {g.driver}"
                + (f", compute capability {g.compute_cap}" if g.compute_cap else "")
                for g in gpus
            ),
        )
    ]
    admin_only = params.get("RmProfilingAdminOnly")
    consumer = any(g.consumer for g in gpus)
    if admin_only == "1" and not root:
        out.append(
            Check(
                "gpu-metrics",
                "warn",
                "GPU performance counters are restricted to admin users (RmProfilingAdminOnly: 1): --gpu-metrics "
                "fails with ERR_NVGPUCTRPERM; everything else works",
                "run as root, or set options nvidia NVreg_RestrictProfilingToAdminUsers=0 in /etc/modprobe.d and "
                "reload the driver",
            )
        )
    elif consumer and admin_only is None and not root:
        out.append(
            Check(
                "gpu-metrics",
                "info",
                "GeForce GPU: --gpu-metrics may fail with ERR_NVGPUCTRPERM unless counters are enabled for users",
                "options nvidia NVreg_RestrictProfilingToAdminUsers=0 (/etc/modprobe.d), then reload the driver",
            )
        )
    else:
        why = "root" if root else "counters open to users" if admin_only == "0" else "datacenter GPU"
        out.append(Check("gpu-metrics", "ok", f"--gpu-metrics should work ({why})"))
    return out, gpus


def find_nvcc(env: dict[str, str]) -> str | None:
    hit = shutil.which("nvcc", path=env.get("PATH", ""))
    if hit:
        return hit
    for pattern in NVCC_CANDIDATES:
        for p in sorted(glob.glob(pattern), reverse=True):
            if os.access(p, os.X_OK):
                return p
    return None


def preflight(
    runner: Runner | None = None,
    env: dict[str, str] | None = None,
    location: NsysLocation | bool | None = True,
    params_text: str | None = None,
    is_root: bool | None = None,
) -> Preflight:
    """Run every check. ``location=True`` means "find nsys"; tests pass a location (or None) and a runner."""
    runner = runner or run_tool
    env = dict(os.environ) if env is None else env
    loc = find_nsys(env) if location is True else location or None
    pf = Preflight(nsys=loc)
    pf.checks += nsys_checks(loc)
    root = (os.geteuid() == 0) if is_root is None else is_root
    if loc is not None:
        rc, out = runner([loc.path, "--version"], 30)
        pf.nsys_version = parse_nsys_version(out) if rc == 0 else None
        if pf.nsys_version:
            pf.checks.append(Check("nsys-version", "ok", f"nsys {pf.nsys_version}"))
        else:
            tail = " ".join(out.split())[-200:]
            pf.checks.append(
                Check("nsys-version", "fail", f"`{loc.path} --version` failed (exit {rc}): {tail}", "reinstall nsys")
            )
        if pf.nsys_version:
            rc, out = runner([loc.path, "status", "-e"], 60)
            pf.status = parse_status_env(out)
            if pf.status.root is not None:
                root = pf.status.root
            pf.checks += status_checks(pf.status)
    if params_text is None:
        try:
            with open(NVIDIA_PARAMS, encoding="utf-8", errors="replace") as fh:
                params_text = fh.read()
        except OSError:
            params_text = ""
    rc, out = runner(["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader"], 30)
    checks, pf.gpus = gpu_checks(rc, out, parse_nvidia_params(params_text), root)
    pf.checks += checks
    if pf.gpus:
        rc, out = runner(["nvidia-smi"], 30)
        pf.cuda_driver = parse_nvidia_smi_cuda(out) if rc == 0 else None
        if pf.cuda_driver:
            pf.checks.append(Check("cuda-driver", "ok", f"driver supports CUDA {pf.cuda_driver}"))
    nvcc = find_nvcc(env)
    if nvcc:
        rc, out = runner([nvcc, "--version"], 30)
        pf.toolkit = parse_nvcc_version(out) if rc == 0 else None
    if pf.toolkit:
        pf.checks.append(
            Check("toolkit", "ok", f"CUDA toolkit {pf.toolkit.release} ({pf.toolkit.build or '?'}, {nvcc})")
        )
    else:
        pf.checks.append(
            Check(
                "toolkit",
                "info",
                "nvcc not found: the CUDA toolkit version is unknown (not needed to capture, but it changes "
                "kernel code: note it in reports)",
                'export PATH="/usr/local/cuda/bin:$PATH"',
            )
        )
    return pf
