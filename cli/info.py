"""``resnet-deploy info``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from resnet_deploy import _json
from resnet_deploy.runtime.info import model_info

from ._errors import handle_errors
from ._options import ModelPath
# metadata is the file's text: escaped, no control characters reach the terminal
from ._output import console, escape, human_bytes


@handle_errors
def info(
    model: ModelPath,
    provider: Annotated[Optional[str], typer.Option(
        "--provider", "-p", help="Also show which provider runs how many nodes.")] = None,
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of tables.")] = False,
) -> None:
    """Describe an ONNX file: inputs, outputs, opset, metadata, op counts, size, providers."""
    data = model_info(model, placement_provider=provider)
    if as_json:
        print(_json.dumps(data, indent=2))
        return
    console.print(f"[bold]{escape(str(data['path']))}[/bold]  {human_bytes(data['size_bytes'])}, "
                  f"{data['parameters']:,} parameters, IR {data['ir_version']}, opsets {data['opsets']}, "
                  f"producer {escape(data['producer'] or '?')}")
    io_table = Table(title="inputs and outputs", title_justify="left")
    for col in ("kind", "name", "dtype", "shape"):
        io_table.add_column(col)
    for kind in ("inputs", "outputs"):
        for v in data[kind]:
            io_table.add_row(kind[:-1], escape(v["name"]), v["dtype"], escape(str(v["shape"])))
    console.print(io_table)
    if data["metadata"]:
        meta = Table(title="metadata", title_justify="left")
        meta.add_column("key")
        meta.add_column("value")
        # The model's own keys first; the optimizer's bookkeeping (onnxsim.*, 19 rows) after them.
        for key, value in sorted(data["metadata"].items(), key=lambda kv: kv[0].startswith("onnxsim.")):
            shown = (f"{len(value)} labels: {', '.join(map(str, value[:3]))}, ..."
                     if key == "labels" and isinstance(value, list) else str(value))
            meta.add_row(escape(key), escape(shown))
        console.print(meta)
    ops = Table(title="op counts", title_justify="left")
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, n in data["ops"].items():
        ops.add_row(escape(op), str(n))
    console.print(ops)
    console.print(f"providers available here: {', '.join(data['available_providers'])}")
    if "placement" in data:
        p = data["placement"]
        nodes = ", ".join(f"{k}: {v}" for k, v in p["nodes"].items())
        console.print(f"node placement with --provider {p['provider']}: {nodes}")
