"""JSON Schema of spec files, with every registered component's params, for editors.

Point yaml-language-server at it (`# yaml-language-server: $schema=thkit.schema.json`) to get
completion and checking of `type:` names and their `params:` while writing a spec.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from thkit.core.errors import ThkitError
from thkit.core.registry import Registry, registry
from thkit.core.spec import Spec

REF_TEMPLATE = "#/$defs/{model}"


def spec_schema(components: Registry | None = None) -> dict[str, Any]:
    components = components or registry()
    loaded = []
    for entry in components:
        try:
            loaded.append((entry, entry.load()))
        except ThkitError:
            continue  # broken or conflicting plugins are reported by `thkit plugins`, not offered here
    models = [(Spec, "validation")] + [(component.Params, "validation") for _, component in loaded]
    keys, schema = models_json_schema(models, ref_template=REF_TEMPLATE)
    definitions = schema.pop("$defs")
    root = definitions.pop(keys[(Spec, "validation")]["$ref"].split("/")[-1])
    variants = []
    for entry, component in loaded:
        params_ref = keys[(component.Params, "validation")]
        variants.append(
            {
                "type": "object",
                "title": f"{entry.kind} {entry.name}",
                "description": component.summary(),
                "properties": {
                    "kind": {"const": entry.kind},
                    "type": {"const": entry.name},
                    "params": params_ref,
                    "inputs": definitions["NodeSpec"]["properties"]["inputs"],
                },
                "required": ["kind", "type"],
                "additionalProperties": False,
            }
        )
    definitions["NodeSpec"] = {"anyOf": variants, "description": definitions["NodeSpec"].get("description", "")}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "thkit spec", **root, "$defs": definitions}
