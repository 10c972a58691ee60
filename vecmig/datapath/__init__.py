"""The data path: everything that reads, embeds, writes and compares points at scale.

    text.py      the text rule: template -> text -> sha256, the hash field next to each vector
    points.py    points and vectors as read, embedded and written
    jobs.py      CopyJob, BackfillJob, TransformJob: what to read and the write rule, as data; Worker
    pipeline.py  the bounded, overlapped engine of one process
    executor.py  LocalExecutor: runs a job with its checkpoint
    compare.py   the source-vs-target comparison verify counts and reconcile repairs
    sample.py    seeded uniform samples

Ops (``vecmig.ops``) build jobs and comparisons; they never drive the engine themselves.
"""
