"""Runs: what ect trains and measures, from a plan to the finished run folder. One planner (plan), the `python -m
ect ...` command lines (commands), the workload set up before measuring (workload), what every run records
(record), a profiled run (profiled), a plain training run (train) and an `ect profile` campaign (campaign)."""
