#!/usr/bin/env python3
"""Where the bytes of the site's wasm go: the code section of the release
wasm as rustc emits it (before wasm-bindgen and wasm-opt strip its name
section), grouped by the crate each function's name points at.

Usage: python3 bench/wasm_breakdown.py [path/to/leptos_auth.wasm]
(default: $CARGO_TARGET_DIR/front/wasm32-unknown-unknown/wasm-release/leptos_auth.wasm,
written by `make release`). Prints a Markdown table."""

import collections
import os
import sys
from pathlib import Path

# First match wins: generic code is named after the crate that defines the
# trait or type, which is where the size comes from (monomorphised copies).
GROUPS = [
    ("reactive_graph", "reactive_graph (signals, effects, resources)"),
    ("tachys", "tachys (views, rendering, hydration)"),
    ("leptos_router", "leptos_router"),
    ("server_fn", "server functions (server_fn, leptos_server)"),
    ("leptos_server", "server functions (server_fn, leptos_server)"),
    ("serde_qs", "serde (json, qs, urlencoded)"),
    ("serde", "serde (json, qs, urlencoded)"),
    ("chrono", "chrono"),
    ("leptos_auth", "leptos_auth (this app)"),
    ("leptos", "leptos, leptos_meta"),
    ("web_sys", "wasm-bindgen, web_sys, js_sys"),
    ("js_sys", "wasm-bindgen, web_sys, js_sys"),
    ("wasm_bindgen", "wasm-bindgen, web_sys, js_sys"),
    ("__wbindgen", "wasm-bindgen, web_sys, js_sys"),
    ("core", "core, alloc, std"),
    ("alloc", "core, alloc, std"),
    ("std", "core, alloc, std"),
]


def leb(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def sections(data):
    i = 8
    while i < len(data):
        sid = data[i]
        size, start = leb(data, i + 1)
        name = None
        if sid == 0:
            length, k = leb(data, start)
            name = data[k:k + length].decode()
        yield sid, name, start, start + size
        i = start + size


def function_imports(data, start):
    count, k = leb(data, start)
    functions = 0
    for _ in range(count):
        for _ in range(2):
            length, k = leb(data, k)
            k += length
        kind = data[k]
        k += 1
        if kind == 0:
            _, k = leb(data, k)
            functions += 1
        elif kind == 1:
            k += 1
            flags, k = leb(data, k)
            _, k = leb(data, k)
            if flags & 1:
                _, k = leb(data, k)
        elif kind == 2:
            flags, k = leb(data, k)
            _, k = leb(data, k)
            if flags & 1:
                _, k = leb(data, k)
        elif kind == 3:
            k += 2
    return functions


def main():
    default = Path(os.environ.get("CARGO_TARGET_DIR", "target")) / \
        "front/wasm32-unknown-unknown/wasm-release/leptos_auth.wasm"
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    data = path.read_bytes()
    imports, code, names = 0, None, {}
    for sid, name, start, end in sections(data):
        if sid == 2:
            imports = function_imports(data, start)
        elif sid == 10:
            code = (start, end)
        elif name == "name":
            k = start + 1 + len("name")
            while k < end:
                sub = data[k]
                size, k = leb(data, k + 1)
                stop = k + size
                if sub == 1:
                    count, k = leb(data, k)
                    for _ in range(count):
                        index, k = leb(data, k)
                        length, k = leb(data, k)
                        names[index] = data[k:k + length].decode(errors="replace")
                        k += length
                k = stop
    if code is None or not names:
        sys.exit(f"{path}: no code or no name section")
    k, _ = code
    count, k = leb(data, k)
    groups = collections.Counter()
    for n in range(count):
        size, body = leb(data, k)
        k = body + size
        name = names.get(imports + n, "")
        group = next((label for key, label in GROUPS if key in name), "other")
        groups[group] += size
    total = sum(groups.values())
    print(f"Code section of `{path.name}` before wasm-opt: {total / 1024:,.0f} KiB in {count:,} functions.\n")
    print("| Group | KiB | Share |")
    print("|---|---|---|")
    for label, size in groups.most_common():
        print(f"| {label} | {size / 1024:,.0f} | {size * 100 / total:.1f}% |")


if __name__ == "__main__":
    main()
