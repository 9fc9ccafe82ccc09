"""Shared plumbing below the question folders: which backend nutpie compiles with
(:mod:`roi.inference.nuts`) and partially pooled community effects (:mod:`roi.inference.pooling`)."""
