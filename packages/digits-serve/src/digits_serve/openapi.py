"""The OpenAPI 3.1 description of `digits serve` (``GET /openapi.json``), and a page showing it (``/docs``).

The page is rendered here from the same description, as plain HTML: it loads nothing from
elsewhere, so it works where browsers have no internet, under the drawing page's strict policy.
"""

import html as markup
import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import digits_serve.connections as connections
import digits_serve.limits as limits
from digits_runtime.predictor import Predictor

JSON = "application/json"


def error_schema(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "error"],
        "properties": {
            "code": {"type": "string", "description": "Stable and machine-readable, e.g. `body_too_large`."},
            "error": {
                "type": "string",
                "description": "One line for people: what is wrong and how to fix it.",
            },
            **(extra or {}),
        },
    }


def spec(predictor: Predictor) -> dict[str, Any]:
    """The OpenAPI document of the server answering with ``predictor``."""
    labels = [str(label) for label in predictor.labels]
    try:
        release = version("digits-serve")
    except PackageNotFoundError:
        release = "0"

    def error(description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}},
        }

    def ok(description: str, schema: dict[str, Any], media: str = JSON) -> dict[str, Any]:
        return {"200": {"description": description, "content": {media: {"schema": schema}}}}

    status = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    image = {"type": "string", "format": "binary"}
    predict_errors = {
        "400": error(
            "Empty body, unreadable multipart, or no file in it (`empty_body`, `bad_multipart`, `no_files`)."
        ),
        "408": error(
            f"The request did not arrive whole within {connections.REQUEST_TIMEOUT} s (`request_timeout`)."
        ),
        "413": error(
            f"Body over {limits.MAX_BODY_BYTES:,} bytes (`body_too_large`), images over "
            f"{limits.MAX_REQUEST_PIXELS // 10**6} megapixels in all (`too_many_pixels`), or metadata "
            f"that may inflate to over {limits.MAX_REQUEST_INFLATION // 2**20} MB (`too_much_metadata`)."
        ),
        "422": {
            "description": "No image could be classified; `results` says why for each.",
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/Failed"}}},
        },
        "431": error(f"Headers, or chunk framing and trailers, over {connections.MAX_HEADER_BYTES:,} bytes."),
        "503": error(
            "Every connection is busy (`server_busy`), or this client holds its share (`client_busy`)."
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "digits",
            "version": release,
            "description": (
                f"Classifies images of handwritten digits as {', '.join(labels)}, and says when an image "
                "is none of them. Every error answer is JSON with a stable `code` and a one-line `error`."
            ),
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Classify one image or several",
                    "description": (
                        "Send one image as the raw body (any content type but multipart), or one or more as "
                        f"multipart/form-data file parts (at most {limits.MAX_FILES}). The answer has one "
                        "result "
                        "per image, in order, whatever their number: its prediction, or its error. At least "
                        "one classified: 200; none: 422."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "image/*": {"schema": image},
                            "application/octet-stream": {"schema": image},
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "array", "items": image}},
                                }
                            },
                        },
                    },
                    "responses": {
                        **ok("One result per image, in order.", {"$ref": "#/components/schemas/Results"}),
                        **predict_errors,
                    },
                }
            },
            "/model": {
                "get": {
                    "summary": "The model: labels, data fingerprint, validation metrics, versions, refusal",
                    "responses": ok(
                        "What the model says about itself.", {"$ref": "#/components/schemas/Model"}
                    ),
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the process answers",
                    "responses": ok("Alive.", status),
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness, as /healthz (kept for existing probes)",
                    "deprecated": True,
                    "responses": ok("Alive.", status),
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the model is loaded and classifies a digit now",
                    "responses": {
                        **ok("Ready.", status),
                        "503": error("The model cannot answer (`not_ready`)."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Metrics in the Prometheus text format, summed over the worker processes",
                    "responses": ok(
                        "digits_http_requests_total and the others.", {"type": "string"}, "text/plain"
                    ),
                }
            },
            "/openapi.json": {
                "get": {"summary": "This description", "responses": ok("OpenAPI 3.1.", {"type": "object"})}
            },
            "/docs": {
                "get": {
                    "summary": "This description as a page",
                    "responses": ok("HTML.", {"type": "string"}, "text/html"),
                }
            },
            "/": {
                "get": {
                    "summary": "A page to draw a digit on, or to upload an image",
                    "responses": ok("HTML.", {"type": "string"}, "text/html"),
                }
            },
        },
        "components": {
            "schemas": {
                "Prediction": {
                    "type": "object",
                    "required": ["file", "probs", "prediction", "accepted", "score"],
                    "properties": {
                        "file": {
                            "type": ["string", "null"],
                            "description": "The file part's name; null for a raw body.",
                        },
                        "probs": {
                            "type": "object",
                            "properties": {label: {"type": "number"} for label in labels},
                            "description": "Probability of each digit.",
                        },
                        "prediction": {"type": "integer", "enum": [int(label) for label in labels]},
                        "accepted": {
                            "type": "boolean",
                            "description": (
                                "False when the refusal rule refuses it: it looks like none of these digits, "
                                "or like two of them as much."
                            ),
                        },
                        "score": {
                            "type": "number",
                            "description": "The refusal rule's score (higher: more like a known digit).",
                        },
                    },
                },
                "ImageError": {
                    "type": "object",
                    "required": ["file", "code", "error"],
                    "properties": {
                        "file": {"type": ["string", "null"]},
                        "code": {
                            "type": "string",
                            "enum": sorted(
                                {*limits.ERROR_CODES.values(), "image_too_complex", "unreadable_image"}
                            ),
                        },
                        "error": {"type": "string"},
                    },
                },
                "Result": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/Prediction"},
                        {"$ref": "#/components/schemas/ImageError"},
                    ]
                },
                "Results": {
                    "type": "object",
                    "required": ["results"],
                    "properties": {
                        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}
                    },
                },
                "Failed": error_schema(
                    {"results": {"type": "array", "items": {"$ref": "#/components/schemas/Result"}}}
                ),
                "Error": error_schema(),
                "Model": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"},
                        "sha256": {"type": "string"},
                        "labels": {"type": "array", "items": {"type": "integer"}},
                        "fingerprint": {"type": ["string", "null"]},
                        "validation_metrics": {"type": ["object", "null"]},
                        "versions": {"type": ["object", "null"]},
                        "trained_on": {"type": ["object", "null"]},
                        "refusal": {"type": ["object", "null"]},
                    },
                },
            }
        },
    }


def html(document: dict[str, Any]) -> str:
    """The OpenAPI ``document`` as one self-contained HTML page: each route, then each schema."""
    e = markup.escape
    info = document["info"]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>{e(info['title'])} API</title>",
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "code,pre{background:#f3f3f3;padding:0 .2em}pre{padding:.5em;overflow:auto}"
        "h2{border-top:1px solid #ccc;padding-top:1rem}.method{font-weight:700;text-transform:uppercase}"
        "table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:.2em .5em;text-align:left}</style>",
        "</head><body>",
        f"<h1>{e(info['title'])} API <small>{e(info['version'])}</small></h1>",
        f"<p>{e(info['description'])}</p><p><a href='openapi.json'>openapi.json</a></p>",
    ]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            parts.append(
                f"<h2 id='{e(method + path)}'><span class=method>{e(method)}</span> "
                f"<code>{e(path)}</code></h2>"
            )
            parts.append(
                f"<p><b>{e(operation['summary'])}</b>"
                f"{' (deprecated)' if operation.get('deprecated') else ''}</p>"
            )
            if "description" in operation:
                parts.append(f"<p>{e(operation['description'])}</p>")
            if "requestBody" in operation:
                types = ", ".join(operation["requestBody"]["content"])
                parts.append(f"<p>Body: <code>{e(types)}</code></p>")
            parts.append("<table><tr><th>Status</th><th>Answer</th><th>Schema</th></tr>")
            for code, response in operation["responses"].items():
                schemas = [media.get("schema", {}) for media in response.get("content", {}).values()]
                names = ", ".join(
                    s["$ref"].rsplit("/", 1)[1] if "$ref" in s else s.get("type", "") for s in schemas
                )
                parts.append(
                    f"<tr><td>{e(code)}</td><td>{e(response['description'])}</td><td>{e(names)}</td></tr>"
                )
            parts.append("</table>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(f"<h3 id='{e(name)}'>{e(name)}</h3><pre>{e(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
