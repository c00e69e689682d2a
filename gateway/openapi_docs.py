"""``GET /docs``: the OpenAPI contract rendered server-side as plain HTML.

No script and no style (the page's CSP is ``default-src 'none'``): operations with
their parameters, bodies and answers, then every schema. All text is escaped.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")


def _ref_link(schema: Any) -> str:
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    return f"<code>{escape(json.dumps(schema, separators=(', ', ': ')))}</code>"


def _operation(method: str, path: str, op: dict[str, Any]) -> list[str]:
    anchor = escape(op.get("operationId", f"{method}-{path}"))
    out = [f'<section id="op-{anchor}"><h3><code>{method.upper()} {escape(path)}</code></h3>',
           f"<p>{escape(op.get('summary', ''))}</p>"]
    if op.get("description"):
        out.append(f"<p>{escape(op['description'])}</p>")
    out.append(f"<p>Auth: {'API key (Authorization: Bearer …)' if op.get('security') else 'none'}</p>")
    if op.get("parameters"):
        out.append("<table><caption>Parameters</caption><tr><th>name</th><th>in</th><th>schema</th>"
                   "<th>description</th></tr>")
        for p in op["parameters"]:
            out.append(f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                       f"<td>{_ref_link(p.get('schema', {}))}</td><td>{escape(p.get('description', ''))}</td></tr>")
        out.append("</table>")
    if body := op.get("requestBody"):
        for content_type, media in body.get("content", {}).items():
            out.append(f"<p>Body ({escape(content_type)}): {_ref_link(media.get('schema', {}))}</p>")
    out.append("<table><caption>Responses</caption><tr><th>status</th><th>meaning</th><th>body</th></tr>")
    for status, resp in op.get("responses", {}).items():
        content = resp.get("content", {})
        bodies = ", ".join(f"{escape(ct)} {_ref_link(m.get('schema', {}))}" for ct, m in content.items())
        out.append(f"<tr><td>{escape(status)}</td><td>{escape(resp.get('description', ''))}</td><td>{bodies}</td></tr>")
    out.append("</table></section>")
    return out


def render(spec: dict[str, Any]) -> str:
    info = spec.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{title} — API</title></head><body>",
           f"<header><h1>{title} — HTTP API</h1><p>{escape(info.get('description', ''))}</p>",
           '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
           f"{escape(spec.get('openapi', ''))})</p></header><main>", "<nav><h2>Operations</h2><ul>"]
    ops = [(m, path, op) for path, item in spec.get("paths", {}).items() for m, op in item.items() if m in _METHODS]
    for method, path, op in ops:
        out.append(f'<li><a href="#op-{escape(op.get("operationId", ""))}"><code>{method.upper()} {escape(path)}'
                   f"</code></a> {escape(op.get('summary', ''))}</li>")
    out.append("</ul></nav><h2>Operations</h2>")
    for method, path, op in ops:
        out += _operation(method, path, op)
    out.append("<h2>Schemas</h2>")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        out.append(f'<section id="schema-{escape(name)}"><h3>{escape(name)}</h3>'
                   f"<pre>{escape(json.dumps(schema, indent=2))}</pre></section>")
    out.append("</main></body></html>")
    return "\n".join(out)
