"""``resnet-deploy models``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from resnet_deploy import _json

from ._errors import handle_errors
from ._output import console


@handle_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print JSON instead of the table.")] = False,
) -> None:
    """List the models export, bench and compare know by name (--model NAME or --depth N [--plain])."""
    from resnet_deploy._zoo_catalogue import shipped_catalogue

    # The catalogue shipped with the package, with or without torch: building every model to count
    # its parameters and MACs took 12-14 s. tests/cli/test_e2e.py holds it equal to the registry.
    rows = shipped_catalogue()
    if as_json:
        print(_json.dumps(rows, indent=2))
        return
    table = Table(title="registered models (He init unless --weights)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for column, justify in (("name", "left"), ("blocks", "right"), ("shortcut", "left"), ("params", "right"),
                            ("GMACs", "right"), ("input", "right"), ("classes", "right")):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(r["name"], f"{r['blocks']} {r['block']}", r["shortcut"], f"{r['parameters'] / 1e6:.2f}M",
                      f"{r['macs'] / 1e9:.2f}", f"{r['image_size']}x{r['image_size']}", str(r["num_classes"]))
    console.print(table)
