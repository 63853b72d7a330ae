"""Analyses nsys does not do: tails, ops, roofline, rules, diff, scaling, nccl. Pure functions, tables in."""
