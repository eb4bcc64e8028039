"""Every fenced snippet of README.md and docs/serving.md, as written there (issue 26 D.1).

- Python blocks run, in a folder of their own, holding the files they name: a real model, photo
  and tune profile made here under the snippet's own file name (a ResNet-18 stands in for the
  ResNet-50 of ``resnet50.onnx``: it takes the same 224x224 input and has the same 1000 classes).
  A name the table below cannot make fails the test: add it there.
- Shell blocks are parsed by bash (``bash -n``), and every ``resnet-deploy SUBCOMMAND`` in them is
  checked against the CLI itself: the subcommand exists and accepts every option the snippet
  passes. They are not run: they install packages, download weights, or start Triton's server
  (the server's commands are tested in ``tests/serving/triton/test_triton_server.py``).

``<!-- snippet: needs NAME, NAME -->`` on the line before a block names files a Python block
needs beyond the quoted names it holds.

In the default tier: beside the session's ResNet-18 export, which other tests share, it costs a
5 s tune and 5 s of snippets (43 s alone, the export included).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import typer

from resnet_deploy_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/serving.md")
_BLOCK = re.compile(r"(?:<!--\s*snippet:\s*needs\s+(?P<needs>[^>]*?)\s*-->\n)?^```(?P<lang>\w*)\n(?P<code>.*?)^```",
                    re.S | re.M)


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    lang: str
    code: str
    needs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def snippets(doc: str) -> list[Snippet]:
    text = (ROOT / doc).read_text()
    found = []
    for m in _BLOCK.finditer(text):
        needs = tuple(n.strip() for n in (m["needs"] or "").split(",") if n.strip())
        found.append(Snippet(doc, text.count("\n", 0, m.start("code")), m["lang"], m["code"], needs))
    return found


ALL = [s for doc in DOCS for s in snippets(doc)]
PYTHON = [s for s in ALL if s.lang == "python"]
SHELL = [s for s in ALL if s.lang in ("bash", "sh", "shell", "console")]


# -- the files snippets name ------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(resnet18_onnx: Path, sample_image: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files a snippet may name, made once: each is copied into a snippet's folder under its name."""
    from resnet_deploy.tune import TuneOptions, tune

    folder = tmp_path_factory.mktemp("snippet-files")
    model = folder / "resnet50.onnx"
    shutil.copyfile(resnet18_onnx, model)
    profile = folder / "resnet50.profile.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tune(TuneOptions(model=model, output=profile, providers=["cpu"], precisions=["fp32"], duration=0.2, rounds=1))
    return {"resnet50.onnx": model, "photo.jpg": sample_image, "cat.jpg": sample_image,
            "resnet50.profile.json": profile, "r50.profile.json": profile}


def _quoted_names(code: str) -> set[str]:
    return set(re.findall(r"""["']([\w.\-/]+\.(?:onnx|json|jpg|jpeg|png|npy|npz))["']""", code))


@pytest.mark.parametrize("snippet", PYTHON, ids=[s.id for s in PYTHON])
def test_python_snippet_runs_as_written(snippet: Snippet, made: dict[str, Path], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    needed = _quoted_names(snippet.code) | set(snippet.needs)
    unknown = sorted(needed - set(made))
    assert not unknown, f"{snippet.id} names {unknown}: add how to make them to this test's `made`, or fix the snippet"
    for name in needed:  # the profile names its model by an absolute path: a copy still runs it
        shutil.copyfile(made[name], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: said in a warning, as the README explains
        exec(compile(snippet.code, snippet.id, "exec"), {"__name__": "__snippet__"})


# -- shell: parsed, and every resnet-deploy command checked against the CLI --------------------

def _cli_options() -> dict[str, set[str]]:
    group = typer.main.get_command(app)
    options: dict[str, set[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        options[name] = {o for p in command.params if p.param_type_name == "option"
                         for o in (*p.opts, *p.secondary_opts)}
        options[name] |= {"--help", "-h"}
    return options


def _commands(code: str) -> list[list[str]]:
    """Each ``resnet-deploy ...`` command of a shell block, as its words (comments dropped,
    continuations joined, split at ``&&``, ``||``, ``;`` and ``|``)."""
    commands: list[list[str]] = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands.append([])
        for token in lexer:
            if token in ("&&", "||", ";", "|", "&", "(", ")"):
                commands.append([])
            else:
                commands[-1].append(token)
    return [c[c.index("resnet-deploy"):] for c in commands if "resnet-deploy" in c[:1]]


def _unknown_options(words: list[str], options: dict[str, set[str]]) -> list[str]:
    if len(words) < 2 or words[1] not in options:
        return [f"no subcommand {words[1] if len(words) > 1 else ''!r}"]
    return [w.split("=", 1)[0] for w in words[2:] if w.startswith("-") and w.split("=", 1)[0] not in options[words[1]]]


@pytest.mark.parametrize("snippet", SHELL, ids=[s.id for s in SHELL])
def test_shell_snippet_parses_and_names_real_options(snippet: Snippet) -> None:
    parsed = subprocess.run(["bash", "-n"], input=snippet.code, capture_output=True, text=True)
    assert parsed.returncode == 0, f"{snippet.id}: {parsed.stderr}"
    options = _cli_options()
    for words in _commands(snippet.code):
        assert not _unknown_options(words, options), (f"{snippet.id}: {' '.join(words)}: "
                                                      f"{_unknown_options(words, options)}")


def test_the_documents_hold_the_snippets_we_test() -> None:
    """The extraction itself: a change of fence style must not leave the tests with nothing to run."""
    assert len(PYTHON) >= 3 and len(SHELL) >= 6, [s.id for s in ALL]
    assert sum(len(_commands(s.code)) for s in SHELL) >= 8


# (a command as a snippet might write it, what the check finds wrong)
BROKEN: list[tuple[str, Callable[[list[str]], bool]]] = [
    ("resnet-deploy predict m.onnx x.jpg --topk 3", lambda bad: bad == ["--topk"]),
    ("resnet-deploy serv m.onnx", lambda bad: bad == ["no subcommand 'serv'"]),
    ("resnet-deploy bench m.onnx --url grpc://h:1 \\\n    --model m --mode throughput", lambda bad: bad == []),
]


@pytest.mark.parametrize(("line", "expect"), BROKEN, ids=["unknown-option", "unknown-command", "continued-line-ok"])
def test_the_check_catches_a_broken_command(line: str, expect: Callable[[list[str]], bool]) -> None:
    (words,) = _commands(line)
    assert expect(_unknown_options(words, _cli_options())), _unknown_options(words, _cli_options())
