"""``bench --url``: is the in-process baseline what the server serves?

A load test compares a served model with the same model run in process. Measured against another
file (an INT8 server against the fp32 file: every served row showed rel err 1.5e-01) or another
configuration (a profile's OpenVINO BF16 against the file on the CPU provider: the server came out
1.71x "faster than in process"), its numbers mislead. The entries ``triton`` and ``serve`` write
for the Python backend state what they serve in their config's parameters
(``resnet_deploy_model_sha256``, ``resnet_deploy_profile_engine``, ``resnet_deploy_provider``);
:func:`mismatches` says in words where the in-process side differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_TIMEOUT_S = 5.0  # reading an entry's config, as check_served's readiness probe

__all__ = ["InProcess", "in_process", "mismatches", "served_parameters", "baseline_notes"]


@dataclass(frozen=True)
class InProcess:
    """What bench runs in process beside the server: the file's digest, the profile engine it
    runs (``--profile``), else the providers it runs the file on."""

    file: Path
    digest: str
    profile_engine: str | None
    providers: tuple[str, ...]


def mismatches(served: dict[str, str], local: InProcess, where: str) -> list[str]:
    """One sentence per way the model served at ``where`` (its config's parameters) is not what
    runs in process; none when the entry states nothing (not ours, or the onnxruntime backend)."""
    notes = []
    digest = served.get("resnet_deploy_model_sha256")
    if digest and digest != local.digest:
        notes.append(f"{where} serves another model file than {local.file.name} (sha256 {digest[:12]}..., "
                     f"{local.file.name} {local.digest[:12]}...): its rows are not the cost of serving this file")
    engine = served.get("resnet_deploy_profile_engine")
    if engine and engine != local.profile_engine:
        runs = (f"the profile engine {local.profile_engine}" if local.profile_engine
                else f"the file as it is ({', '.join(local.providers)})")
        notes.append(f"{where} serves a profile's configuration ({engine}) and the in-process engine runs {runs}: "
                     "give bench the profile it serves (--profile)")
    elif not engine and local.profile_engine and "resnet_deploy_provider" in served:
        notes.append(f"{where} serves the file as it is on {served['resnet_deploy_provider']}, "
                     f"the in-process engine the profile's {local.profile_engine}: "
                     "give bench the file it serves instead of --profile")
    elif (not engine and not local.profile_engine
          and served.get("resnet_deploy_provider") not in (None, *local.providers)):
        notes.append(f"{where} runs the model on {served['resnet_deploy_provider']}, the in-process engines on "
                     f"{', '.join(local.providers)}: pass --providers {served['resnet_deploy_provider']}")
    return notes


def served_parameters(client: Any, model: str, protocol: str) -> dict[str, str]:
    """The string parameters of ``model``'s config on the server (``client`` of tritonclient);
    none from a server that does not show its configs (it states nothing, so nothing is said)."""
    try:
        config = (client.get_model_config(model, as_json=True, client_timeout=CONFIG_TIMEOUT_S)["config"]
                  if protocol == "grpc" else client.get_model_config(model))
    except Exception:  # noqa: BLE001 - tritonclient's InferenceServerException, a timeout: no statement to compare
        return {}
    parameters = config.get("parameters", {}) if isinstance(config, dict) else {}
    return {k: v.get("string_value", "") for k, v in parameters.items() if isinstance(v, dict)}


def in_process(file: Path, profile: str | Path | None, providers: list[str]) -> InProcess:
    """What bench runs in process: ``file`` on ``providers``, or as ``profile`` configures it."""
    from ..graph.io import model_sha256
    from ..profile.deployment import load_profile

    engine = load_profile(profile, check_model=False).engine if profile is not None else None
    return InProcess(file, model_sha256(file), engine, tuple(providers))


def baseline_notes(urls: list[str], model: str, local: InProcess) -> list[str]:
    """:func:`mismatches` for each server of ``urls`` (each already checked to serve ``model``)."""
    from .served import parse_url
    from .served_client import open_client

    notes: list[str] = []
    for url in urls:
        protocol, address = parse_url(url)
        client = open_client(protocol, address, timeout=CONFIG_TIMEOUT_S)
        try:
            notes += mismatches(served_parameters(client, model, protocol), local, f"{protocol}://{address}")
        finally:
            client.close()
    return notes
