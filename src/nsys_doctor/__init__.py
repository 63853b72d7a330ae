"""nsys-doctor: where GPU time goes in an Nsight Systems trace, and what to optimize next."""

__version__ = "0.1.0"

# The version of every JSON output (report, diff, scaling, nccl, roofline, info, explain); docs/report-json.md.
# 2: the report gained `kind`, `run` (the run structure) and findings[].cost_ns / cost_share.
JSON_SCHEMA = "nsys-doctor/2"
