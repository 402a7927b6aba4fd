"""A tenant's data over its life: retention by plan, export to one archive, erasure to a tombstone."""
