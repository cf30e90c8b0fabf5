"""SSE-C: server-side encryption with customer-provided keys.

* :mod:`cargohold.sse.customer`: the request headers, the stored key check (never the key),
  S3's errors for missing, malformed and wrong keys, the over-HTTP refusal.
* :mod:`cargohold.sse.chunks`: the at-rest format, independent AES-256-GCM chunks.
* :mod:`cargohold.sse.streams`: sealing writes and decrypting reads in worker threads.
"""
