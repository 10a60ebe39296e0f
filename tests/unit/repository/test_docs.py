"""The docs are checked against what they describe, wherever a claim can be read mechanically.

README.md, docs/*.md and bench/README.md name commands, options, settings, make targets, files, tests and
figures; each of these is checked here against the thing itself: the ``rtap`` CLI as click builds it, the settings
classes, the Makefile, the repository's tree, the test functions, the metrics rtap serves, the dashboards'
definition, the pinned versions, the compose stack and the results of the benchmarks the docs quote. A renamed
option, a removed setting or a re-run benchmark fails here until the docs say what is true again.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import rtap.settings as rtap_settings

REPO = Path(__file__).resolve().parents[3]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
RESULTS = REPO / "bench" / "results"


# -- reading Markdown -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """A piece of code in a document: an inline span or one line of a fenced block."""

    doc: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.doc.relative_to(REPO)}:{self.line}"


FENCE = re.compile(r"^ {0,3}```")


def prose_and_fences(doc: Path) -> tuple[list[tuple[int, str]], list[Code]]:
    """The document's lines outside fenced blocks (numbered) and every line inside one."""
    prose: list[tuple[int, str]] = []
    fenced: list[Code] = []
    inside = False
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        if FENCE.match(line):
            inside = not inside
        elif inside:
            fenced.append(Code(doc, number, line))
        else:
            prose.append((number, line))
    return prose, fenced


def inline_spans(doc: Path) -> list[Code]:
    """Every inline code span outside fenced blocks; a span may run over a line break, as Markdown allows."""
    prose, _ = prose_and_fences(doc)
    text = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    spans = []
    for match in re.finditer(r"(?<!`)`([^`]+?)`(?!`)", text):
        line = numbers[text.count("\n", 0, match.start())]
        spans.append(Code(doc, line, match.group(1).replace("\n", " ")))
    return spans


@cache
def code(doc: Path) -> tuple[Code, ...]:
    return (*inline_spans(doc), *prose_and_fences(doc)[1])


def all_code() -> Iterator[Code]:
    for doc in DOCS:
        yield from code(doc)


def doc_id(doc: Path) -> str:
    return str(doc.relative_to(REPO))


# -- links and anchors ----------------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_and_fences(doc)[0]:
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            anchor = github_anchor(heading.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def links(doc: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose_and_fences(doc)[0]:
        for match in re.finditer(r"\]\(([^)\s]+)\)", line):
            yield number, match.group(1)


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_relative_link_resolves_to_a_file_and_heading(doc: Path) -> None:
    broken = []
    for number, target in links(doc):
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            broken.append(f"{doc_id(doc)}:{number}: {target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{doc_id(doc)}:{number}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


# -- the rtap command line ------------------------------------------------------------------------------------


@cache
def cli() -> Any:
    """The click command typer builds from rtap's app (typer vendors its own click: no click types here)."""
    from rtap.cli import app

    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def option_choices(param: Any) -> tuple[Any, ...]:
    """An option's choices (an enum's members), as typer describes them (click's ``type.choices`` in older
    typers, ``type_descriptor.choices`` in the ones that vendor click); () when it takes any value."""
    for holder in (getattr(param, "type_descriptor", None), getattr(param, "type", None)):
        choices = getattr(holder, "choices", None)
        if choices:
            return tuple(choices)
    return ()


def options(command: Any) -> set[str]:
    return {"--help"} | {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


# A shell command ends at these: `a && b`, `a; b`, `a | grep`, `a & b`. An escaped `\|` (a table cell's "or") does
# not end it.
SHELL_SEPARATOR = re.compile(r"&&|;|(?<!\\)\|(?=\s)|(?<=\s)&(?=\s)")
RTAP_WORD = re.compile(r"(?<![\w.-])rtap (?=[a-z])")
# What may stand before `rtap` when it is the command run: nothing but a prompt, variable assignments and a wrapper
# (`$ RTAP_X=1 sudo rtap ...`), or a path to it (`.venv/bin/rtap`), `python -m`, `docker compose exec SERVICE`.
COMMAND_START = re.compile(
    r"\s*(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=(?:'[^']*'|\"[^\"]*\"|\S*)\s+)*(?:(?:sudo|time|nice(?:\s+-n\s+\d+)?)\s+)*\(?"
)
AFTER_LAUNCHER = re.compile(r"(?:/|-m |\b(?:exec|run)(?:\s+-\S+)*\s+[\w-]+\s+)$")


def rtap_invocations(text: str) -> Iterator[list[str]]:
    """The words after each ``rtap`` that is run in a piece of code, one shell command at a time (comments left
    out); ``rtap`` in a message or a sentence (`the login rtap may not ...`) is not run."""
    for segment in SHELL_SEPARATOR.split(re.split(r"(?:^|(?<=\s))#", text, maxsplit=1)[0]):
        for match in RTAP_WORD.finditer(segment):
            before = segment[: match.start()]
            if COMMAND_START.fullmatch(before) or AFTER_LAUNCHER.search(before):
                yield segment[match.end() :].split()


def check_invocation(words: list[str]) -> str | None:
    """None if ``rtap WORDS`` names a command and options it has; else what is wrong."""
    command = cli()
    path = ["rtap"]
    rest = words
    while is_group(command) and rest:
        word = rest[0].rstrip(".,:'`")
        alternatives = word.split("\\|") if "\\|" in word else word.split("|")
        if not re.fullmatch(r"[a-z][\w-]*", alternatives[0]):
            break
        unknown = [name for name in alternatives if name not in command.commands]
        if unknown:
            return f"`{' '.join(path)}` has no command {unknown[0]!r}"
        if len(alternatives) > 1:
            return None  # `rtap kafka start|stop|status`: each one exists
        command = command.commands[word]
        path.append(word)
        rest = rest[1:]
    params = {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word, following in zip(rest, [*rest[1:], ""][: len(rest)], strict=True):
        flag = re.match(r"^\[?(--?[a-zA-Z][\w-]*)", word)
        if not flag:
            continue
        if flag.group(1) not in options(command):
            return f"`{' '.join(path)}` has no option {flag.group(1)}"
        choices = {str(getattr(choice, "value", choice)) for choice in option_choices(params.get(flag.group(1)))}
        value = following.rstrip(".,:;)]`'")
        if choices and re.fullmatch(r"[a-z][\w-]*", value) and value not in choices:
            return f"`{' '.join(path)} {flag.group(1)}` takes one of {sorted(choices)}, not {value!r}"
    return None


def test_every_rtap_command_and_option_shown_exists() -> None:
    wrong = []
    seen = 0
    for piece in all_code():
        for words in rtap_invocations(piece.text):
            seen += 1
            problem = check_invocation(words)
            if problem:
                wrong.append(f"{piece.where()}: {problem}: {piece.text.strip()}")
    assert seen > 100, f"only {seen} rtap commands found in the docs: is the parser broken?"
    assert not wrong, "\n".join(wrong)


def test_the_command_checker_refuses_what_does_not_exist() -> None:
    assert check_invocation(["dlq", "show", "--limit", "5"]) is None
    assert check_invocation(["kafka", "start\\|stop\\|status"]) is None
    assert check_invocation(["kafka", "restart"]) is not None
    assert check_invocation(["produce", "--speed", "5"]) is not None
    assert check_invocation(["up", "--profile", "cluster"]) is None
    assert check_invocation(["up", "--profile", "galaxy"]) is not None
    run = [
        " ".join(words)
        for text in (
            "RTAP_X=1 .venv/bin/rtap sql 'SELECT 1'",
            "docker compose -f c.yaml exec dashboard rtap sql q",
            "python -m rtap sql q",
            "$ rtap stream --master URL",
        )
        for words in rtap_invocations(text)
    ]
    assert run == ["sql 'SELECT 1'", "sql q", "sql q", "stream --master URL"]
    assert not list(rtap_invocations("error: the Kafka login rtap may not WRITE topic; this rtap ships migrations"))


def leaf_commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if not is_group(command):
        yield path
        return
    for name, sub in command.commands.items():
        yield from leaf_commands(sub, (*path, name))


def named_commands(words: list[str]) -> set[tuple[str, ...]]:
    """The command paths ``rtap WORDS`` names (``kafka start|stop|status``: three)."""
    command = cli()
    path: tuple[str, ...] = ()
    for word in words:
        if not is_group(command):
            break
        names = re.split(r"\\?\|", word.rstrip(".,:`"))
        if len(names) > 1:
            return {(*path, name) for name in names}
        if word not in command.commands:
            break
        command, path = command.commands[word], (*path, word)
    return {path}


def test_the_readme_cli_table_lists_every_command() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text.split("| command | what it does |", 1)[1].split("\n\n", 1)[0]
    listed: set[tuple[str, ...]] = set()
    for row in table.splitlines()[2:]:
        first_cell = re.split(r"(?<!\\)\|", row)[1]  # `rtap backup DIR` / `rtap restore DIR`: both
        for span in re.findall(r"`([^`]*)`", first_cell):
            for words in rtap_invocations(span):
                listed |= named_commands(words)
    missing = {" ".join(path) for path in leaf_commands(cli())} - {" ".join(path) for path in listed}
    assert not missing, f"README.md's CLI table does not list: {sorted(missing)}"


# -- settings ---------------------------------------------------------------------------------------------------


def setting_fields() -> Iterator[tuple[str, FieldInfo]]:
    """(environment name, field) of every setting of rtap.settings; a component (``Settings.kafka``) is not one,
    its own fields are, under their own prefix."""
    for value in vars(rtap_settings).values():
        if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
            prefix = value.model_config.get("env_prefix", "")
            for field_name, info in value.model_fields.items():
                if not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings)):
                    yield f"{prefix}{field_name}".upper(), info


@cache
def settings_names() -> frozenset[str]:
    """Every environment variable rtap.settings reads (each setting, and any alias it has)."""
    names: set[str] = set()
    for name, info in setting_fields():
        names.add(name)
        choices = getattr(info.validation_alias, "choices", ())
        names.update(str(choice) for choice in choices if str(choice).startswith("RTAP_"))
    return frozenset(names)


# RTAP_* names the docs use that are not rtap settings, and the file that defines each.
NOT_SETTINGS = {
    "RTAP_UI_ADDRESS": "deploy/compose/compose.yaml",  # Compose's own variable: which interface to publish on
    # Compose's own variables too: where the collector's TLS ports are published, and the name of its certificate
    "RTAP_COLLECTOR_ADDRESS": "deploy/compose/compose.yaml",
    "RTAP_COLLECTOR_SITE": "deploy/compose/compose.yaml",
    "RTAP_FAULTS_SCALE": "Makefile",  # the fault suite's size (tests/e2e)
}

NAME = r"RTAP_[A-Z0-9_]*[A-Z0-9*]"


def mentioned_settings(text: str) -> Iterator[tuple[str, list[str]]]:
    """Each RTAP_* name in the text, and the names it abbreviates: ``RTAP_A_HOST/PORT`` and ``RTAP_A_HOST`` /
    ``_PORT`` stand for RTAP_A_HOST and RTAP_A_PORT, ``RTAP_A_*`` for every name that starts so."""
    pattern = re.compile(rf"({NAME})((?:/[A-Z0-9_]+)*)((?:`?\s*/\s*`_[A-Z0-9_]+`?)*)")
    for match in pattern.finditer(text):
        first = match.group(1)
        tails = [part for part in match.group(2).split("/") if part]
        tails += re.findall(r"_([A-Z0-9_]+)", " ".join(re.findall(r"`_[A-Z0-9_]+", match.group(3))))
        yield first, [*(alternatives(first, tail) for tail in tails)]


def alternatives(first: str, tail: str) -> str:
    """The name ``tail`` abbreviates after ``first``: the one of the settings that shares the longest head."""
    parts = first.split("_")
    for keep in range(len(parts) - 1, 1, -1):
        candidate = "_".join([*parts[:keep], tail])
        if candidate in settings_names():
            return candidate
    return "_".join([*parts[:-1], tail])


def setting_exists(name: str) -> bool:
    if name.endswith("*"):
        return any(known.startswith(name[:-1]) for known in settings_names())
    return name in settings_names()


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_rtap_setting_named_exists(doc: Path) -> None:
    unknown = []
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
        for first, abbreviated in mentioned_settings(line):
            for name in (first, *abbreviated):
                if name in NOT_SETTINGS:
                    assert name in (REPO / NOT_SETTINGS[name]).read_text(encoding="utf-8")
                elif not setting_exists(name):
                    unknown.append(f"{doc_id(doc)}:{number}: {name}")
    assert not unknown, "not settings (src/rtap/settings.py):\n" + "\n".join(unknown)


def test_the_setting_reader_expands_abbreviations() -> None:
    line = "`RTAP_DASHBOARD_HOST` / `_PORT`, RTAP_CLICKHOUSE_BACKEND/HOST/PORT and `RTAP_ALERT_*`"
    found = {first: names for first, names in mentioned_settings(line)}
    assert found["RTAP_DASHBOARD_HOST"] == ["RTAP_DASHBOARD_PORT"]
    assert found["RTAP_CLICKHOUSE_BACKEND"] == ["RTAP_CLICKHOUSE_HOST", "RTAP_CLICKHOUSE_PORT"]
    assert setting_exists("RTAP_ALERT_*")
    assert not setting_exists("RTAP_NOTHING_*")


def compose_settings_paragraph() -> str:
    text = (REPO / "docs" / "compose.md").read_text(encoding="utf-8")
    start = text.index("Not taken from `.env`")
    return text[start : text.index("\n\n", start)]


def test_compose_md_names_every_setting_the_stack_does_not_take_from_env() -> None:
    """docs/compose.md says every setting in .env reaches the rtap containers except the ones it lists: the
    list and the stack's pass-through list (x-rtap-settings in compose.yaml) must together be every setting."""
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    passed = set(compose["x-rtap-settings"])
    fixed = {name for first, rest in mentioned_settings(compose_settings_paragraph()) for name in (first, *rest)}
    expanded = {
        known for name in fixed if name.endswith("*") for known in settings_names() if known.startswith(name[:-1])
    }
    fixed = {name for name in fixed if not name.endswith("*")} | expanded
    assert not passed & fixed, f"compose.md says the stack fixes what it passes through: {sorted(passed & fixed)}"
    missing = settings_names() - passed - fixed
    assert not missing, f"docs/compose.md does not say these settings stay out of the containers: {sorted(missing)}"


def test_compose_md_memory_table_is_the_stacks_limits() -> None:
    """The table of docs/compose.md: each service's mem_limit in compose.yaml, and the peak their sum with one
    one-shot at a time (the one-shots run one after the other)."""
    compose = yaml.safe_load((REPO / "deploy" / "compose" / "compose.yaml").read_text(encoding="utf-8"))
    limits = {name: int(str(service["mem_limit"]).removesuffix("m")) for name, service in compose["services"].items()}
    text = (REPO / "docs" / "compose.md").read_text(encoding="utf-8")
    table = text.split("Memory limits (MiB):", 1)[1].strip().splitlines()
    names = [cell.strip() for cell in table[0].strip("|").split("|")]
    values = [int(cell.strip()) for cell in table[2].strip("|").split("|")]
    documented = dict(zip(names, values, strict=True))
    assert documented.pop("peak") == sum(limits.values()) - min(limits["migrate"], limits["metabase-provision"])
    assert documented == limits


@cache
def settings_defaults() -> dict[str, Any]:
    """Every setting's environment name -> its default value."""
    return {name: info.get_default(call_default_factory=True) for name, info in setting_fields()}


UNITS = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def same_value(written: str, default: Any) -> bool:
    """Whether a default as a table writes it (`30`, 256 MiB, `127.0.0.1`, none) is the setting's default."""
    if not written.startswith("`"):
        sized = re.fullmatch(r"([\d.]+) (KiB|MiB|GiB)", written)
        if sized:
            return bool(float(sized.group(1)) * UNITS[sized.group(2)] == default)
        if re.fullmatch(r"\d+", written):
            return bool(int(written) == default)
        return default in (None, "", False) or isinstance(default, list | dict | Path)  # `none`, `–`, "system CAs"
    literal = written.strip("`")
    if isinstance(default, bool):
        return literal == str(default).lower()
    if isinstance(default, int | float):
        return float(literal) == default
    return literal == str(default)


def default_tables() -> Iterator[tuple[str, int, list[str], list[str]]]:
    """(doc, line, names, written defaults) of every row of a table whose second column is `default` or `local`."""
    for doc in DOCS:
        columns: list[str] = []
        for number, line in prose_and_fences(doc)[0]:
            if not line.startswith("|"):
                columns = []
                continue
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not columns:
                columns = cells
                continue
            if len(columns) < 2 or columns[1] not in {"default", "local"} or set(cells[0]) <= {"-", ":"}:
                continue
            names = [name for first, rest in mentioned_settings(cells[0]) for name in (first, *rest)]
            values = [value.strip() for value in re.split(r" / |, ", cells[1])]
            if names and not any(name.endswith("*") for name in names):
                yield doc_id(doc), number, names, values


def test_the_defaults_in_the_docs_tables_are_the_settings_defaults() -> None:
    rows = list(default_tables())
    assert len(rows) > 20
    wrong = []
    for doc, number, names, values in rows:
        if len(values) != len(names):
            if len(values) == 1 and not values[0].startswith("`"):
                values = values * len(names)  # one `none` for a pair
            else:
                wrong.append(f"{doc}:{number}: {len(names)} settings, {len(values)} defaults")
                continue
        for name, value in zip(names, values, strict=True):
            if name in settings_defaults() and not same_value(value, settings_defaults()[name]):
                wrong.append(f"{doc}:{number}: {name} written {value}, default {settings_defaults()[name]!r}")
    assert not wrong, "\n".join(wrong)


SCALE = {"": 1, "s": 1, "min": 60, "h": 3600, "%": 0.01, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
INLINE_DEFAULT = re.compile(rf"`?({NAME})`? \((?:`([^`]+)`|(\d[\d,.]*) ?(s|min|h|%|KiB|MiB|GiB)?)[,;)]")


def test_the_defaults_given_in_passing_are_the_settings_defaults() -> None:
    """`RTAP_STREAM_MAX_FUTURE_SKEW_S` (900 s), `RTAP_ALERT_WINDOW_S` (5 min), RTAP_STREAM_MAX_BATCH_BYTES (128 MiB)."""
    wrong, seen = [], 0
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for name, literal, figure, unit in INLINE_DEFAULT.findall(line):
                if name not in settings_defaults():
                    continue
                seen += 1
                default = settings_defaults()[name]
                if literal:
                    ok = literal == str(default)
                else:
                    ok = abs(float(figure.replace(",", "")) * SCALE[unit] - float(default)) < 1e-9 * max(1, default)
                if not ok:
                    wrong.append(
                        f"{doc_id(doc)}:{number}: {name} ({literal or figure + ' ' + unit}), default {default!r}"
                    )
    assert seen > 20
    assert not wrong, "\n".join(wrong)


# -- make targets -----------------------------------------------------------------------------------------------


@cache
def make_targets() -> frozenset[str]:
    targets: set[str] = set()
    for makefile in (REPO / "Makefile", *sorted((REPO / "deploy").rglob("*.mk"))):
        targets |= set(re.findall(r"^([a-z][\w-]*):(?!=)", makefile.read_text(encoding="utf-8"), re.MULTILINE))
    return frozenset(targets)


def test_every_make_target_named_exists() -> None:
    unknown = []
    for piece in all_code():
        for target in re.findall(r"(?:^|(?<=[\s(]))make ([a-z][\w-]*)", piece.text):
            if target not in make_targets():
                unknown.append(f"{piece.where()}: make {target}")
    assert {"test", "aws-up"} <= make_targets()  # the included .mk files are read too
    assert not unknown, "\n".join(unknown)


def test_the_readme_names_the_debian_packages_make_test_installs() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nsystem-deps:", 1)[1].split("\n\n", 1)[0]
    installed = {
        package
        for command in re.findall(r"apt-get install ([^;&|}]+)", recipe)
        for package in command.split()
        if re.fullmatch(r"[a-z][\w.+-]*", package)
    }
    (named,) = quoted("README.md", r"installs Debian's ([\w, ]+) if missing")
    assert set(re.split(r", | and ", named)) == installed


# -- files, tests and modules -----------------------------------------------------------------------------------


TOP_LEVEL = r"(?:src|tests|deploy|bench|jars|docs|\.github)"
PATH = re.compile(rf"(?:^|(?<=[\s(`]))((?:\.\./)?{TOP_LEVEL}/[\w./*<>-]*[\w*/])(?:::(\w+))?")


@cache
def defined_test_functions() -> frozenset[str]:
    names: set[str] = set()
    for path in (REPO / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"^\s*(?:async )?def (test_\w+)\(", path.read_text(encoding="utf-8"), re.MULTILINE))
    return frozenset(names)


@cache
def made_by_the_user(path: Path) -> bool:
    """A file the docs tell the reader to make: from its ``.example`` beside it, or one git is told to ignore
    (deploy/compose/.env, terraform.tfstate)."""
    if path.with_name(path.name + ".example").exists():
        return True
    ignored = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(path)], check=False)
    return ignored.returncode == 0


def path_exists(doc: Path, written: str) -> bool:
    base = doc.parent if written.startswith("../") else REPO
    if "<" in written:  # a placeholder: `<data dir>/cluster/kafka-<n>`
        written = written.split("<", 1)[0].rsplit("/", 1)[0]
    if "*" in written:
        return any(base.glob(written))
    path = (base / written).resolve()
    return path.exists() or made_by_the_user(path)


def test_every_repository_path_named_exists() -> None:
    missing = []
    for piece in all_code():
        for written, function in PATH.findall(piece.text):
            if not path_exists(piece.doc, written):
                missing.append(f"{piece.where()}: {written}")
            elif function and not re.search(rf"def {function}\(", (REPO / written).read_text(encoding="utf-8")):
                missing.append(f"{piece.where()}: {written}::{function}")
    assert not missing, "\n".join(missing)


def test_every_test_named_exists() -> None:
    """Test files by their name alone (`test_compose.py`) and test functions (`::test_x`, `test_x`)."""
    files = {path.name for path in (REPO / "tests").rglob("test_*.py")}
    missing = []
    for piece in all_code():
        for name in re.findall(r"(?<![\w/.])(test_\w+\.py)\b", piece.text):
            if name not in files:
                missing.append(f"{piece.where()}: {name}")
        for name in re.findall(r"(?:^|(?<=[\s:`(]))(test_\w+)(?![\w.])", piece.text):
            if name not in defined_test_functions():
                missing.append(f"{piece.where()}: {name}")
    assert not missing, "\n".join(missing)


def defines(module: Path, name: str) -> bool:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.ImportFrom | ast.Import) and name in {a.asname or a.name for a in node.names}:
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def resolve(dotted: str) -> str | None:
    """None if the dotted name is a module of src/ or a name defined at the top of one; else what is missing.
    Names whose first part is no package or module of rtap are no Python (``rtap.events`` is a table,
    ``rtap.init`` the tracker's API) and pass."""
    parts = dotted.split(".")
    first = REPO / "src" / "rtap" / parts[1]
    if not (first.is_dir() or first.with_suffix(".py").exists()):
        return None
    for split in range(len(parts), 0, -1):
        base = REPO / "src" / Path(*parts[:split])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.exists():
            rest = parts[split:]
            if rest and not defines(module, rest[0]):
                return f"{'.'.join(parts[:split])} defines no {rest[0]}"
            return None
    return f"no module {dotted}"


def test_every_module_and_name_of_rtap_named_exists() -> None:
    missing = []
    for piece in all_code():
        for dotted in re.findall(r"(?<![\w./@-])(rtap(?:\.[A-Za-z_]\w*)+)", piece.text):
            problem = resolve(dotted)
            if problem:
                missing.append(f"{piece.where()}: {dotted}: {problem}")
        for written in re.findall(r"(?<![\w./-])(rtap/[\w/]+\.py)", piece.text):
            if not (REPO / "src" / written).exists():
                missing.append(f"{piece.where()}: {written}")
        for module in re.findall(r"python -m ((?:bench|rtap_bench)\.\w+)", piece.text):
            root = REPO / "bench" if module.startswith("bench.") else REPO / "bench" / "rtap_bench"
            if not (root / (module.split(".", 1)[1] + ".py")).exists():
                missing.append(f"{piece.where()}: python -m {module}")
    assert not missing, "\n".join(missing)


# -- metrics ----------------------------------------------------------------------------------------------------


@cache
def served_metrics() -> dict[str, frozenset[str]]:
    """Every metric rtap's own collectors serve: its exposed name (a counter's with ``_total``) -> its labels."""
    from prometheus_client.metrics import MetricWrapperBase

    from rtap.metrics.collector import CollectorMetrics
    from rtap.metrics.dashboard import DashboardMetrics
    from rtap.metrics.producer import ProducerMetrics
    from rtap.metrics.stream import KafkaEndOffsets, StreamMetrics

    found: dict[str, frozenset[str]] = {}
    for collector in (StreamMetrics(), DashboardMetrics(), CollectorMetrics(), ProducerMetrics()):
        for attribute in vars(collector).values():
            if isinstance(attribute, MetricWrapperBase):
                suffix = "_total" if attribute._type == "counter" else ""
                found[attribute._name + suffix] = frozenset(attribute._labelnames)
        for family in collector.collect():  # the ones made at collection time (BulkHistogram)
            suffix = "_total" if family.type == "counter" else ""
            found.setdefault(family.name + suffix, frozenset())
    # Read from the broker at scrape time: given offsets here, so that it has samples to show its labels.
    for family in KafkaEndOffsets(lambda: {("clickstream.events", 0): 1}).collect():
        labels = frozenset(key for sample in family.samples for key in sample.labels)
        found[family.name + ("_total" if family.type == "counter" else "")] = labels
    return found


def documented_metrics() -> dict[str, frozenset[str]]:
    """The first column of docs/operations.md's metrics table: name -> the labels written in braces."""
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = text.split("| metric | type | what it counts |", 1)[1].split("\n\n", 1)[0]
    documented: dict[str, frozenset[str]] = {}
    for row in section.splitlines()[2:]:
        first = row.split("|")[1]
        for name, labels in re.findall(r"`(rtap_\w+)(?:\{([^}]*)\})?`", first):
            documented[name] = frozenset(label.strip() for label in labels.split(",") if label.strip())
    return documented


def test_the_metrics_table_in_operations_md_is_what_rtap_serves() -> None:
    served, documented = served_metrics(), documented_metrics()
    assert len(served) > 20
    assert set(documented) == set(served), (
        f"documented, not served: {sorted(set(documented) - set(served))}; "
        f"served, not documented: {sorted(set(served) - set(documented))}"
    )
    wrong = {
        name: (sorted(labels), sorted(served[name])) for name, labels in documented.items() if labels != served[name]
    }
    assert not wrong, f"labels (documented, served): {wrong}"


# -- figures quoted from the code and from bench/results --------------------------------------------------------


def quoted(doc: str, pattern: str) -> tuple[str, ...]:
    """The groups of the one place ``pattern`` matches in the document (it must match exactly once)."""
    text = re.sub(r"\s+", " ", (REPO / doc).read_text(encoding="utf-8"))
    found = re.findall(pattern, text)
    assert len(found) == 1, f"{doc}: {pattern!r} matches {len(found)} times, expected once"
    return found[0] if isinstance(found[0], tuple) else (found[0],)


def result(name: str) -> Any:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def one_decimal(value: float) -> str:
    return f"{value:.1f}"


def newest_bench() -> Any:
    return result(sorted(RESULTS.glob("bench-*.json"))[-1].name)


def fixed_step(step_rate: float) -> dict[str, Any]:
    """The newest bench's live step at the fixed rate ``step_rate``."""
    return next(s for s in newest_bench()["P_sustained"]["steps"] if s["kind"] == "fixed" and s["rate"] == step_rate)


def step_outcome(step_rate: float) -> str:
    """How that step ended: "held" or "failed"."""
    return str(fixed_step(step_rate)["outcome"])


def freshness(step_rate: float) -> tuple[str, str]:
    step = fixed_step(step_rate)
    return f"{step['freshness']['p50_s']:.2f}", f"{step['freshness']['p99_s']:.2f}"


# How the docs write a small count.
NUMBER_WORDS = dict(enumerate((
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty",
), 1))  # fmt: skip


def sustained_runs() -> list[float]:
    runs = []
    for path in sorted(RESULTS.glob("bench-*.json")):
        sustained = json.loads(path.read_text(encoding="utf-8")).get("P_sustained") or {}
        if sustained.get("ceiling_found"):
            runs.append(sustained["sustainable_records_per_s"])
    return runs


def thousands(value: float, step: int = 100) -> str:
    return f"{round(value / step) * step:,}"


def startup_median(mode: str, milestone: str) -> float:
    """A milestone's median seconds in bench/results/startup.json, with the JVM archives ("on") or without."""
    value: float = result("startup.json")["median"][mode][milestone]
    return value


def sizing() -> tuple[str, ...]:
    """docs/operating.md's sizing table: per record, and per 10,000 events/s (86,400 x 10,000 records a day)."""
    job = newest_bench()["P_rtap_job"]["median_cpu_us_per_record"]
    collect = result("collect.json")["summary"]
    single, batch = collect["E1"]["collector_cpu_us_per_request"], collect["B25"]["collector_cpu_us_per_request"] / 25
    disk = result("soak.json")["disk"]
    kafka, warehouse = disk["kafka_bytes_per_record"], disk["warehouse_bytes_per_record"]
    per_day = 86_400 * 10_000 / 1e9  # bytes per record -> GB a day
    return (
        f"{job:.1f}",
        f"{job / 100:.2f}",
        f"{single:.0f}",
        f"{single / 100:.1f}",
        f"{batch:.1f}",
        f"{batch / 100:.2f}",
        f"{kafka:.0f}",
        f"{kafka * per_day:.0f}",
        f"{warehouse:.0f}",
        f"{warehouse * per_day:.0f}",
    )


FIGURES: list[tuple[str, str, Callable[[], tuple[str, ...]]]] = [
    (
        "README.md",
        r"load average ([\d.]+) before the runs, ([\d.]+) after\) the first rows land ([\d.]+)–([\d.]+) s after start",
        lambda: (
            one_decimal(result("startup.json")["load_before"]),
            one_decimal(result("startup.json")["load_after"]),
            *(one_decimal(f(r["first_rows_s"] for r in result("startup.json")["runs"]["on"])) for f in (min, max)),
        ),
    ),
    (
        "README.md",
        r"the job's query is up after ~([\d.]+) s and the first micro-batch then takes ~([\d.]+) s more",
        lambda: (
            one_decimal(startup_median("on", "job_s")),
            one_decimal(startup_median("on", "first_rows_s") - startup_median("on", "job_s")),
        ),
    ),
    (
        "README.md",
        r"at 1,000 events/s: p50 ([\d.]+) s, p99 ([\d.]+) s; at 10,000: p50 ([\d.]+) s, p99 ([\d.]+) s",
        lambda: (*freshness(1000.0), *freshness(10000.0)),
    ),
    (
        "README.md",
        r"the job holds ([\d,]+)-([\d,]+) events/s \((\w+) runs\)",
        lambda: (
            thousands(min(sustained_runs())),
            thousands(max(sustained_runs())),
            NUMBER_WORDS[len(sustained_runs())],
        ),
    ),
    (
        "README.md",
        r"drains a ([\d.]+)M-record backlog at ~([\d,]+) records/s within ([\d.]+) GB",
        lambda: (
            str(result("backlog.json")["events_asked"] // 1_000_000),
            thousands(result("backlog.json")["records_per_s"], 10_000),
            one_decimal(result("backlog.json")["peak_rss_mb"] / 1000),
        ),
    ),
    (
        "README.md",
        r"([\d,]+) single-event requests/s and ([\d,]+) events/s in batches of 25, at ([\d.]+) and ([\d.]+) of "
        r"the same server without Kafka; (\d+) µs of the collector's CPU per single-event request; memory flat at "
        r"(\d+) MiB",
        lambda: (
            f"{round(result('collect.json')['summary']['E1']['requests_per_s']):,}",
            f"{round(result('collect.json')['summary']['B25']['events_per_s']):,}",
            f"{result('collect.json')['ratios']['E1/N1']:.2f}",
            f"{result('collect.json')['ratios']['B25/N25']:.2f}",
            f"{round(result('collect.json')['summary']['E1']['collector_cpu_us_per_request'])}",
            f"{round(result('collect.json')['outage']['rss_mb_during_outage_max'])}",
        ),
    ),
    (
        "docs/operating.md",
        r"job \(Spark source, parse, classify, sink, embedded chDB\) \| ([\d.]+) CPU-µs \| ([\d.]+) cores \|.*?"
        r"\(`sendBeacon`\) \| (\d+) CPU-µs per request \| ([\d.]+) cores \|.*?"
        r"batches of 25 \| ([\d.]+) CPU-µs per event \| ([\d.]+) cores \|.*?"
        r"\(replication 1\) \| (\d+) bytes \| (\d+) GB a day per replica \|.*?"
        r"all tables \| (\d+) bytes \| (\d+) GB a day \|",
        sizing,
    ),
    (
        "docs/operating.md",
        r"held ([\d,]+) events/s with freshness p99 under 3 s, and (\w+) 50,000 \(a freshness p99 of "
        r"([\d.]+) s at 50,000\).*? "
        r"the stack's peak RSS was ([\d,]+) MiB under `make bench`",
        lambda: (
            f"{newest_bench()['P_sustained']['sustainable_records_per_s']:,.0f}",
            step_outcome(50000.0),
            f"{float(freshness(50000.0)[1]):.1f}",
            f"{newest_bench()['peak_rss_mb']['stack']:,.0f}",
        ),
    ),
    (
        "docs/operations.md",
        r"broker ready ([\d.]+) → ([\d.]+) s, the job's query started ([\d.]+) → ([\d.]+) s, first rows after "
        r"`rtap up` ([\d.]+) → ([\d.]+) s",
        lambda: tuple(
            one_decimal(startup_median(mode, milestone))
            for milestone in ("broker_s", "job_s", "first_rows_s")
            for mode in ("off", "on")
        ),
    ),
]


@pytest.mark.parametrize(("doc", "pattern", "expected"), FIGURES, ids=[f"{d}:{p[:40]}" for d, p, _ in FIGURES])
def test_figures_quoted_from_bench_results_are_the_results(
    doc: str, pattern: str, expected: Callable[[], tuple[str, ...]]
) -> None:
    assert quoted(doc, pattern) == expected()


def test_the_dates_of_old_results_are_said() -> None:
    """A result the docs call older than the job's hot path must still be that result (re-run it: update the
    docs)."""
    soak_md = (RESULTS / "soak.md").read_text(encoding="utf-8")
    cluster = result("cluster.json")
    (soak_day,) = quoted("docs/operations.md", r"soak\.md\)?[^.]*? measured on (\d{4}-\d\d-\d\d)")
    (cluster_day,) = quoted("docs/scale-out.md", r"measured on (\d{4}-\d\d-\d\d), before")
    assert f"({soak_day}T" in soak_md
    assert cluster["started"].startswith(cluster_day)


def test_aws_md_counts_the_panels_and_checks_rtap_validate_makes() -> None:
    """rtap validate (rtap.ops.checks.run_checks): the dashboard's health, the panel listing, events flowing,
    the collector's round trip, the pipeline's and the newest window's freshness, one check per panel; then
    Metabase's health and one per card, and `rtap metabase provision` makes one card per panel."""
    from rtap.dashboard.definition import load_definition

    definition = load_definition()
    panels = len(definition.panels_by_id())
    dashboards, listed_panels = quoted("docs/aws.md", r"dashboards listed: (\d+) dashboards, (\d+) panels")
    (checks,) = quoted("docs/aws.md", r"all (\d+) checks passed")
    assert (int(dashboards), int(listed_panels)) == (len(definition.dashboards), panels)
    assert int(checks) == 6 + panels + 1 + panels


def test_aws_md_counts_the_checkov_skips() -> None:
    (skips,) = quoted("docs/aws.md", r"checkov with zero failed checks \(the (\w+) skips are written inline")
    written = sum(
        path.read_text(encoding="utf-8").count("checkov:skip") for path in (REPO / "deploy" / "terraform").rglob("*.tf")
    )
    assert skips == NUMBER_WORDS[written]


# -- versions ----------------------------------------------------------------------------------------------------


def pinned(pattern: str, path: str) -> str:
    found = re.search(pattern, (REPO / path).read_text(encoding="utf-8"), re.MULTILINE)
    assert found is not None, f"{path}: no {pattern!r}"
    return found.group(1)


def test_the_versions_the_docs_name_are_the_pinned_ones() -> None:
    spark = pinned(r"^pyspark==(\S+)$", "constraints.txt")
    kafka = pinned(r"<kafka.version>([^<]+)<", "jars/pom.xml")
    assert pinned(r"<spark.version>([^<]+)<", "jars/pom.xml") == spark
    clickhouse = pinned(r"image: clickhouse/clickhouse-server:(\d+\.\d+)\.", "deploy/compose/compose.yaml")
    go = pinned(r"Go (\d+\.\d+)\+ is required", "Makefile")
    assert pinned(r'go-version: "([^"]+)"', ".github/workflows/ci.yml") == go
    terraform = pinned(r'required_version = "~> (\d+\.\d+)"', "deploy/terraform/versions.tf")
    expected = {
        r"(?:[Pp]y)?[Ss]park \**(\d+\.\d+\.\d+)": spark,
        r"_2\.13:(\d+\.\d+\.\d+)": spark,
        r"Apache Kafka (\d+\.\d+\.\d+)": kafka,  # what rtap runs, not a version a cluster must have
        r"apache/kafka:(\d+\.\d+\.\d+)": kafka,
        r"clickhouse/clickhouse-server`? (\d+\.\d+)": clickhouse,  # the image, not a server's minimum version
        r"\bGo (\d+\.\d+)\+": go,
        r"Terraform (\d+\.\d+)(?! and later)": terraform,  # "Terraform 1.9 and later" says what Terraform does
    }
    wrong = []
    seen = dict.fromkeys(expected, 0)
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for pattern, version in expected.items():
            for match in re.finditer(pattern, text):
                seen[pattern] += 1
                if match.group(1) != version:
                    wrong.append(f"{doc_id(doc)}: {match.group(0)} (pinned: {version})")
    assert all(seen.values()), f"patterns that match nothing any more: {[p for p, n in seen.items() if not n]}"
    assert not wrong, "\n".join(wrong)
