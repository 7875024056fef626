"""Write the KEDA schemas that tests/unit/test_kubernetes.py validates ScaledObjects against.

KEDA's CRDs are not in kubernetes-validate (it has the built-in kinds only). The PyPI package
cloudcoil-models-keda (Apache-2.0) carries pydantic models generated from KEDA's CRDs; this
exports their JSON schemas and makes them strict as kubernetes-validate's ``--strict`` schemas
are: an object with known properties accepts no other (so a misspelt field is an error, where
the API server would drop it silently). Run it again to follow a newer KEDA:

    pip install --target /tmp/keda-models cloudcoil-models-keda==2.16.1.0
    PYTHONPATH=/tmp/keda-models python tests/unit/schemas/make_keda.py

(into a folder of its own: its pytest plugin needs packages the project does not install).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from cloudcoil.models.keda import v1alpha1

HERE = Path(__file__).resolve().parent


def strict(node: Any) -> Any:
    """node with ``additionalProperties: false`` on every object schema that lists properties."""
    if isinstance(node, dict):
        found = {key: strict(value) for key, value in node.items()}
        if "properties" in found and "additionalProperties" not in found:
            found["additionalProperties"] = False
        return found
    if isinstance(node, list):
        return [strict(item) for item in node]
    return node


def main() -> None:
    source = f"cloudcoil-models-keda {version('cloudcoil.models.keda')} (PyPI, Apache-2.0)"
    for kind in ("ScaledObject", "TriggerAuthentication"):
        schema = strict(getattr(v1alpha1, kind).model_json_schema(by_alias=True))
        schema["$comment"] = f"keda.sh/v1alpha1 {kind}, from {source}, by make_keda.py"
        (HERE / f"keda-{kind.lower()}.json").write_text(json.dumps(schema, indent=1) + "\n")


if __name__ == "__main__":
    main()
