"""Generates the AsyncAPI 3.0 document of our Kafka topics from the integration-event models."""

from __future__ import annotations

from typing import Any

from shared.contracts import EVENT_TYPES, PUBLISHERS, CloudEvent
from shared.kafka import TOPICS


def _message_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))


def _message(event_type: str) -> dict[str, Any]:
    model = EVENT_TYPES[event_type]
    return {
        "name": event_type,
        "title": model.__name__,
        "contentType": "application/cloudevents+json",
        "summary": (model.__doc__ or "").strip() or event_type,
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": (
                        "the refund id (customer.erased.v1: the erasure's `ce_…` id;"
                        " api_key.*: the key's `ak_…` id)"
                    ),
                }
            }
        },
        "payload": {
            "allOf": [
                {"$ref": "#/components/schemas/CloudEvent"},
                {
                    "type": "object",
                    "properties": {
                        "type": {"const": event_type},
                        "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                    },
                },
            ]
        },
    }


def generate() -> dict[str, Any]:
    schemas: dict[str, Any] = {"CloudEvent": CloudEvent.model_json_schema()}
    for model in EVENT_TYPES.values():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for service, models in PUBLISHERS.items():
        topic = TOPICS[service]
        types = [model.TYPE for model in models]
        names = {
            _message_name(t): {"$ref": f"#/components/messages/{_message_name(t)}"} for t in types
        }
        channels[service] = {
            "address": topic,
            "description": f"Integration events published by {service}; record key = refund id.",
            "messages": names,
        }
        operations[f"{service}Publishes"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{service}"},
            "messages": [{"$ref": f"#/channels/{service}/messages/{n}"} for n in names],
        }
        messages.update({_message_name(t): _message(t) for t in types})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Refund workflow integration events",
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 (structured JSON) on Kafka. Delivery is at least once; "
                "the `id` is stable across re-publication and `(source, position)` "
                "identifies an event for exactly-once processing."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
