"""Operations tools: what an operator runs against a deployed pipeline.

- ``checks`` / ``http`` (``rtap validate --target URL``): the end-to-end check of a running stack;
- ``reconcile`` (``rtap reconcile``): the warehouse against the generator's ground truth, exactly;
- ``dead_letters`` / ``replay`` (``rtap dlq reasons|show|replay``): why records were refused, and their replay.
"""
