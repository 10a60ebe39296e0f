"""Values as Confluent's JSON Schema serializer writes them: Schema Registry's wire format, from the library itself.

:func:`serialized` (the tests' side) runs this file with ``.venv-serializers``' Python (``make test`` builds it:
confluent-kafka with its ``json`` and ``schemaregistry`` extras, kept out of the main virtualenv, see the Makefile).
There, :func:`main` registers the schema with the library's in-memory registry (``mock://``) and serializes each
document read from stdin (one JSON document per line) with ``JSONSerializer``, printing each value in hex.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Standard library only at this level: the serializers' virtualenv runs this file and has nothing of rtap's.
PYTHON = Path(__file__).resolve().parents[2] / ".venv-serializers" / "bin" / "python"


def serialized(topic: str, schema: dict[str, Any], documents: Iterable[dict[str, Any]]) -> list[bytes]:
    """Each document as confluent-kafka's ``JSONSerializer`` writes it for ``topic``'s values under ``schema``."""
    assert PYTHON.exists(), f"{PYTHON} is missing: `make test` builds it (the Makefile's .venv-serializers)"
    lines = "".join(json.dumps(document) + "\n" for document in documents)
    done = subprocess.run(
        [str(PYTHON), __file__, topic, json.dumps(schema)], input=lines, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [bytes.fromhex(line) for line in done.stdout.split()]


def main() -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.json_schema import JSONSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    topic, schema = sys.argv[1], sys.argv[2]
    serialize = JSONSerializer(schema, SchemaRegistryClient.new_client({"url": "mock://rtap-tests"}))
    context = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        print(serialize(json.loads(line), context).hex())


if __name__ == "__main__":
    main()
