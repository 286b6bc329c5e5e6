"""JSON schemas of the two KEDA resources deploy/k8s uses (keda.sh/v1alpha1 ScaledObject and
TriggerAuthentication), since the Kubernetes schemas package has no CRDs.

Written for this project from KEDA's documented API (the ScaledObject specification and the
redis-streams scaler's page, KEDA 2.12+): the fields are spelt as there, unknown fields are errors,
and the redis-streams trigger's metadata must pick one of its three modes and name a Redis.
"""

from __future__ import annotations

from typing import Any

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
    "additionalProperties": False,
}
_NUMBER_STRING = {"type": "string", "pattern": r"^[0-9]+$"}

REDIS_STREAMS_METADATA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "address": {"type": "string"},
        "addressFromEnv": {"type": "string"},
        "host": {"type": "string"},
        "hostFromEnv": {"type": "string"},
        "port": _NUMBER_STRING,
        "portFromEnv": {"type": "string"},
        "usernameFromEnv": {"type": "string"},
        "passwordFromEnv": {"type": "string"},
        "stream": {"type": "string", "minLength": 1},
        "consumerGroup": {"type": "string", "minLength": 1},
        "pendingEntriesCount": _NUMBER_STRING,
        "streamLength": _NUMBER_STRING,
        "lagCount": _NUMBER_STRING,
        "activationLagCount": _NUMBER_STRING,
        "activationStreamLength": _NUMBER_STRING,
        "databaseIndex": _NUMBER_STRING,
        "enableTLS": {"enum": ["true", "false"]},
        "unsafeSsl": {"enum": ["true", "false"]},
    },
    "additionalProperties": False,
    "required": ["stream"],
    "allOf": [
        {"anyOf": [{"required": ["address"]}, {"required": ["addressFromEnv"]}, {"required": ["host"]}]},
        {
            "oneOf": [
                {"required": ["pendingEntriesCount"]},
                {"required": ["streamLength"]},
                {"required": ["lagCount"]},
            ]
        },
        {  # pending entries and lag are per consumer group
            "if": {"anyOf": [{"required": ["pendingEntriesCount"]}, {"required": ["lagCount"]}]},
            "then": {"required": ["consumerGroup"]},
        },
    ],
}

SCALED_OBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}},
                    "additionalProperties": False,
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                # autoscaling/v2 HorizontalPodAutoscalerBehavior, checked apart
                                "behavior": {"type": "object"},
                            },
                        },
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "metadata": _STRING_MAP,
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "additionalProperties": False,
                                "properties": {
                                    "name": {"type": "string"},
                                    "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                                },
                            },
                        },
                        "if": {"properties": {"type": {"const": "redis-streams"}}},
                        "then": {"properties": {"metadata": REDIS_STREAMS_METADATA}},
                    },
                },
            },
        },
    },
    "additionalProperties": False,
}

TRIGGER_AUTHENTICATION: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "TriggerAuthentication"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "secretTargetRef": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name", "key"],
                        "additionalProperties": False,
                        "properties": {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "key": {"type": "string"},
                        },
                    },
                },
                "env": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["parameter", "name"],
                        "additionalProperties": False,
                        "properties": {
                            "parameter": {"type": "string"},
                            "name": {"type": "string"},
                            "containerName": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
    "additionalProperties": False,
}

SCHEMAS = {"ScaledObject": SCALED_OBJECT, "TriggerAuthentication": TRIGGER_AUTHENTICATION}
