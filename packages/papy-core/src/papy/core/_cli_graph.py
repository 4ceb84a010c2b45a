"""Pictures of a pipeline for ``papy graph``: Graphviz DOT and Mermaid text.

A pipeline is first described as a plain ``PipelineGraph`` (nodes, pipes,
shared NuMaps), then rendered. The description is the only part that knows
about Pipers; the renderers only know this module's dataclasses, so they can
be tested on small hand-made graphs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRAPHVIZ_HINT = (
    "Graphviz 'dot' is needed for SVG/PNG output and was not found on PATH. "
    "Install it (Debian/Ubuntu: 'sudo apt-get install graphviz', macOS: "
    "'brew install graphviz', conda: 'conda install graphviz') or write a "
    ".dot / .mmd file instead and render it elsewhere (Mermaid renders on "
    "GitHub and at https://mermaid.live)."
)


@dataclass(frozen=True)
class NuMapInfo:
    """How a parallel Piper evaluates: one NuMap, possibly shared."""

    key: str  # unique within a picture; pipers with the same key share a NuMap
    name: str
    worker_type: str  # "thread" or "process"
    worker_num: int
    remote: tuple[tuple[str, int], ...] = ()

    def summary(self) -> str:
        """e.g. ``process x2``, ``remote 127.0.0.1:18812 x2`` or both joined
        by ``+`` (local workers are left out when there are none)."""
        parts = []
        if self.worker_num or not self.remote:
            parts.append(f"{self.worker_type} x{self.worker_num}")
        parts += [f"remote {host} x{number}" for host, number in self.remote]
        return " + ".join(parts)


@dataclass(frozen=True)
class PiperNode:
    key: str  # unique, safe as a DOT / Mermaid identifier
    name: str
    functions: tuple[str, ...]
    numap: NuMapInfo | None = None
    produce: int = 1
    consume: int = 1
    spawn: int = 1
    repeat: bool = False

    def settings(self) -> str:
        """The produce/consume/spawn settings that differ from 1:1, or ''."""
        parts = []
        if self.consume != 1:
            parts.append(f"consume={self.consume}")
        if self.produce != 1:
            parts.append(f"produce={self.produce}")
        if self.spawn != 1:
            parts.append(f"spawn={self.spawn}")
        if self.repeat:
            parts.append("repeat")
        return " ".join(parts)

    def label_lines(self) -> list[str]:
        """Name, functions, where it runs, settings: one line each (any line
        break inside a name becomes a space)."""
        name = " ".join(self.name.splitlines()) or " "
        lines = [name, " → ".join(self.functions) or "(no function)"]
        lines.append(self.numap.summary() if self.numap else "linear")
        if self.settings():
            lines.append(self.settings())
        return lines


@dataclass
class PipelineGraph:
    """Nodes in upstream-before-downstream order, pipes as (from, to) keys
    in the direction the data flows."""

    title: str
    nodes: list[PiperNode] = field(default_factory=list)
    pipes: list[tuple[str, str]] = field(default_factory=list)

    def shared_numaps(self) -> dict[str, tuple[NuMapInfo, list[PiperNode]]]:
        """NuMaps used by more than one Piper, with those Pipers."""
        groups: dict[str, tuple[NuMapInfo, list[PiperNode]]] = {}
        for node in self.nodes:
            if node.numap is not None:
                groups.setdefault(node.numap.key, (node.numap, []))[1].append(node)
        return {key: group for key, group in groups.items() if len(group[1]) > 1}


# -- rendering ------------------------------------------------------------------


def _dot_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: list[str]) -> str:
    # \l would left-align; \n centres each line, which reads better in boxes.
    escaped = [line.replace("\\", "\\\\").replace('"', '\\"') for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def to_dot(graph: PipelineGraph) -> str:
    """Graphviz DOT text: one box per Piper (parallel ones filled), an arrow
    per pipe, and a dashed cluster around Pipers that share a NuMap."""
    out = [
        f"digraph {_dot_string(graph.title)} {{",
        "  rankdir=LR;",
        '  graph [fontname="Helvetica"];',
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica"];',
    ]
    shared = graph.shared_numaps()
    clustered = {node.key for _, members in shared.values() for node in members}

    def node_line(node: PiperNode, indent: str) -> str:
        style = ', style="rounded,filled", fillcolor="#dbe9f6"' if node.numap else ""
        return f"{indent}{node.key} [label={_dot_label(node.label_lines())}{style}];"

    for number, (info, members) in enumerate(shared.values()):
        out.append(f"  subgraph cluster_numap_{number} {{")
        out.append(f"    label={_dot_label([f'NuMap {info.name}: {info.summary()}'])};")
        out.append('    style="dashed";')
        out += [node_line(node, "    ") for node in members]
        out.append("  }")
    out += [node_line(node, "  ") for node in graph.nodes if node.key not in clustered]
    out += [f"  {upstream} -> {downstream};" for upstream, downstream in graph.pipes]
    out.append("}")
    return "\n".join(out) + "\n"


def _mermaid_text(text: str) -> str:
    # Inside a quoted Mermaid label, '"' ends the label, '<'/'>' are HTML and
    # '#' starts an entity code, so each is written as an entity code.
    replacements = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;"}
    return "".join(replacements.get(char, char) for char in text)


def to_mermaid(graph: PipelineGraph) -> str:
    """Mermaid flowchart text, left to right, with the same content as DOT."""
    out = ["flowchart LR"]
    shared = graph.shared_numaps()
    clustered = {node.key for _, members in shared.values() for node in members}

    def node_line(node: PiperNode, indent: str) -> str:
        label = "<br/>".join(_mermaid_text(line) for line in node.label_lines())
        return f'{indent}{node.key}["{label}"]'

    for number, (info, members) in enumerate(shared.values()):
        title = _mermaid_text(f"NuMap {info.name}: {info.summary()}")
        out.append(f'  subgraph numap_{number}["{title}"]')
        out += [node_line(node, "    ") for node in members]
        out.append("  end")
    out += [node_line(node, "  ") for node in graph.nodes if node.key not in clustered]
    out += [f"  {upstream} --> {downstream}" for upstream, downstream in graph.pipes]
    parallel = [node.key for node in graph.nodes if node.numap]
    if parallel:
        out.append("  classDef parallel fill:#dbe9f6,stroke:#3b6ea5")
        out.append(f"  class {','.join(parallel)} parallel")
    return "\n".join(out) + "\n"


# -- files ----------------------------------------------------------------------

TEXT_FORMATS = {".dot": to_dot, ".gv": to_dot, ".mmd": to_mermaid}
IMAGE_FORMATS = {".svg": "svg", ".png": "png"}


class GraphOutputError(Exception):
    """An output file could not be written: bad suffix, or Graphviz missing
    or failing. The message says what to do."""


def output_paths(text: str | os.PathLike[str]) -> list[Path]:
    """The files ``-o TARGET`` stands for: the path itself when its suffix is
    known, or TARGET.dot and TARGET.mmd when it has no suffix.

    Raises GraphOutputError for an empty TARGET, a folder (an existing one,
    ``.`` or ``..``), a name that is only a suffix (``.mmd``) or an unknown
    suffix.
    """
    if os.fspath(text) == "":  # checked before Path(), which makes it "."
        raise GraphOutputError("-o '': give a file name, e.g. pipeline.svg")
    target = Path(text)
    if target.name in ("", ".", "..") or target.is_dir():
        raise GraphOutputError(
            f"-o {str(target)!r}: is a folder; give a file, e.g. "
            f"{target / 'pipeline.svg'}"
        )
    if target.name.startswith(".") and target.suffix == "":
        raise GraphOutputError(
            f"-o {str(target)!r}: give a name before the suffix, e.g. "
            f"{target.with_name('pipeline' + target.name)}"
        )
    if target.suffix == "":
        return [target.with_suffix(".dot"), target.with_suffix(".mmd")]
    suffix = target.suffix.lower()
    if suffix in TEXT_FORMATS or suffix in IMAGE_FORMATS:
        return [target]
    known = ", ".join(sorted([*TEXT_FORMATS, *IMAGE_FORMATS]))
    raise GraphOutputError(
        f"-o {target}: unknown suffix {target.suffix!r}; use one of {known}, "
        "or no suffix for both .dot and .mmd"
    )


def write_picture(graph: PipelineGraph, path: Path) -> None:
    """Write ``graph`` to ``path`` in the format its suffix names."""
    suffix = path.suffix.lower()
    if suffix in TEXT_FORMATS:
        path.write_text(TEXT_FORMATS[suffix](graph), encoding="utf-8")
        return
    dot = shutil.which("dot")
    if dot is None:
        raise GraphOutputError(f"cannot write {path}: {GRAPHVIZ_HINT}")
    result = subprocess.run(
        [dot, f"-T{IMAGE_FORMATS[suffix]}", "-o", str(path)],
        input=to_dot(graph),
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise GraphOutputError(
            f"Graphviz 'dot' failed writing {path} (status {result.returncode}): "
            f"{result.stderr.strip()}"
        )


# -- describing a pipeline ------------------------------------------------------


def _function_name(function: Any) -> str:
    for attribute in ("__qualname__", "__name__"):
        name = getattr(function, attribute, None)
        if name:
            return str(name)
    return type(function).__name__


def _function_call(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], width: int = 40
) -> str:
    """``name`` or ``name(arg, key=value)`` with the Worker's extra arguments
    for this function, shortened to about ``width`` characters."""
    extras = [repr(arg) for arg in args]
    extras += [f"{key}={value!r}" for key, value in kwargs.items()]
    if not extras:
        return _function_name(function)
    inside = ", ".join(extras)
    if len(inside) > width:
        inside = inside[: width - 1] + "…"
    return f"{_function_name(function)}({inside})"


def _safe_key(prefix: str, number: int, name: str) -> str:
    return f"{prefix}{number}_" + re.sub(r"[^A-Za-z0-9_]", "_", name)[:40]


def numap_info(numap: Any, key: str = "numap") -> NuMapInfo:
    """What a NuMap object says about its workers."""
    remote = []
    for entry in getattr(numap, "worker_remote", None) or ():
        host, number = entry
        remote.append((str(host), int(number)))
    return NuMapInfo(
        key=key,
        name=str(getattr(numap, "name", "") or key),
        worker_type=str(getattr(numap, "worker_type", "?")),
        worker_num=int(getattr(numap, "worker_num", 0) or 0),
        remote=tuple(remote),
    )


def describe(pipeline: Any, title: str = "pipeline") -> PipelineGraph:
    """Describe a Dagger/Plumber: its Pipers in upstream-to-downstream order
    and its pipes in the direction of the data flow."""
    # A Dagger's postorder lists every Piper after the Pipers it depends on,
    # i.e. upstream first.
    pipers = list(pipeline.postorder())
    graph = PipelineGraph(title=title)
    keys: dict[int, str] = {}
    numap_keys: dict[int, str] = {}
    for number, piper in enumerate(pipers):
        name = str(getattr(piper, "name", None) or f"piper{number}")
        keys[id(piper)] = _safe_key("p", number, name)
        numap = piper.imap
        info = None
        if numap is not None:
            numap_key = numap_keys.setdefault(id(numap), f"numap{len(numap_keys)}")
            info = numap_info(numap, numap_key)
        worker = piper.worker
        graph.nodes.append(
            PiperNode(
                key=keys[id(piper)],
                name=name,
                functions=tuple(
                    _function_call(function, args, kwargs)
                    for function, args, kwargs in zip(
                        worker.task, worker.args, worker.kwargs, strict=True
                    )
                ),
                numap=info,
                produce=int(piper.produce),
                consume=int(piper.consume),
                spawn=int(piper.spawn),
                repeat=bool(getattr(piper, "repeat", False)),
            )
        )
    for piper in pipers:
        for upstream in pipeline.get_upstream(piper):
            graph.pipes.append((keys[id(upstream)], keys[id(piper)]))
    return graph
