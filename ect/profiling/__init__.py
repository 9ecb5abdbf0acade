"""Energy-profiled training: the sampler, measurement windows, one profiled run, and the `ect profile` campaign."""
