"""``rtap bench``: throughput of every stage against its raw baseline, in one run on one local stack."""
