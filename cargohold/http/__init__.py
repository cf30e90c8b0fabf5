"""The HTTP layer: addressing, request dispatch, S3 XML and response rendering."""
