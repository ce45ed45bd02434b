"""A new agency from its own table: the file profiled (pipelines.data.profiling) and a commented
params/<agency>.yaml drafted from what it holds, for a person to read and correct."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml
from pydantic import ValidationError

from pipelines.config import (
    SLUG,
    AgencyParams,
    ParamsError,
    TableFormat,
    UseCase,
    describe_validation_error,
)
from pipelines.data import readers, storage
from pipelines.data.profiling import TableProfile, profile_table

TEMPLATES = Path(__file__).with_name("templates")
DEFAULT_USE_CASE = "main"
MIN_TRAINING_ROWS = UseCase.model_fields["min_training_rows"].default
FALLBACK_ENCODINGS = ("cp1252", "latin-1")  # tried in turn when a text table is not UTF-8


@dataclass(frozen=True)
class Draft:
    params_file: Path
    data_file: Path  # where the params point: in the project, copied there if it was not
    copied: bool
    profile: TableProfile
    text: str
    encoding: str | None = None  # the text's when it is not UTF-8


def slug(text: str, prefix: str = "data") -> str:
    """A name params accept: lower-case words joined by dashes, starting with a letter
    ('2024 export' -> 'data-2024-export')."""
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not words:
        return prefix
    return words if words[0].isalpha() else f"{prefix}-{words}"


def draft_params(
    agency: str,
    source: Path,
    project: Path,
    *,
    target: str | None = None,
    use_case: str = DEFAULT_USE_CASE,
    force: bool = False,
) -> Draft:
    """Profile the file and write params/<agency>.yaml; the file is copied under data/<agency>/
    when it is not in the project yet. Refuses to replace a params file unless `force`."""
    for name, value, prefix in (("an agency", agency, "agency"), ("a use case", use_case, "case")):
        if not re.match(SLUG, value):
            raise ParamsError(
                f"'{value}' cannot be {name} name: use lower-case letters, digits and dashes, "
                f"starting with a letter, e.g. '{slug(value, prefix)}'"
            )
    params_file = project / "params" / f"{agency}.yaml"
    if params_file.exists() and not force:
        raise ParamsError(
            f"{params_file} exists already; edit it, or draft it again with --force (it is "
            "replaced)"
        )
    source = Path(source).expanduser().resolve()
    frame, encoding = read_source(source)
    profile = profile_table(frame, target)
    data_file = place_in_project(source, project, agency)
    text = render(
        facts(agency, use_case, source, data_file.relative_to(project), profile, encoding)
    )
    # a draft that is not valid params would stop every command that reads all of params/:
    # it is checked before the data file is copied or the params file written
    parse_params_text(text, params_file)
    copied = data_file != source
    if copied:
        data_file.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, data_file)
    storage.write_text(params_file, text)
    return Draft(params_file, data_file, copied, profile, text, encoding)


def read_source(source: Path) -> tuple[pd.DataFrame, str | None]:
    """The table, and the encoding it was read in when its text is not UTF-8: agencies'
    exports are often Windows-1252 or Latin-1, and there are no params yet to say so."""
    try:
        return storage.read_table(source), None
    except storage.InputFileError as error:
        failure = error
    try:
        text = source.is_file() and readers.resolve_format(source, None) == "csv"
    except storage.InputFileError:
        text = False
    for encoding in FALLBACK_ENCODINGS if text else ():
        try:
            return storage.read_table(source, TableFormat(encoding=encoding)), encoding
        except storage.InputFileError:
            continue
    raise failure


def place_in_project(source: Path, project: Path, agency: str) -> Path:
    """Where the params point: the file itself when it is in the project, else its copy under
    data/<agency>/ (made once the draft is known to be valid)."""
    try:
        source.relative_to(project)
        return source
    except ValueError:
        return project / "data" / agency / source.name


def parse_params_text(text: str, params_file: Path) -> None:
    """The draft as params: an error here is a drafting fault, named with the file and key."""
    try:
        raw = yaml.safe_load(text)
        AgencyParams.model_validate(raw)
    except yaml.YAMLError as error:
        raise ParamsError(f"{params_file}: the draft is not valid YAML: {error}") from error
    except ValidationError as error:
        raise ParamsError(
            f"{describe_validation_error(params_file, error)}\nThe draft was not written; "
            "please report this with the table's column names."
        ) from error


def render(drafted: dict[str, Any]) -> str:
    """The params file's text, from the draft's facts."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["yaml"] = lambda value: json.dumps(value, ensure_ascii=False)
    return environment.get_template("params.yaml.j2").render(**drafted)


def facts(
    agency: str,
    use_case: str,
    source: Path,
    path: Path,
    profile: TableProfile,
    encoding: str | None = None,
) -> dict[str, Any]:
    found = readers.resolve_format(source, None)
    batch_format = {
        **({"decimal": ","} if profile.decimal_comma else {}),
        **({"encoding": encoding} if encoding else {}),
    }
    if found == "csv":
        layout = readers.text_layout(source, TableFormat(encoding=encoding))
        read_options = [
            ("format", "csv"),
            ("separator", layout.separator),
            ("header", layout.header),
            *([("encoding", encoding)] if encoding else []),
            *([("skip_initial_space", True)] if layout.skip_initial_space else []),
            *([("decimal", ",")] if profile.decimal_comma else []),
        ]
        described = f"delimited text ({layout.describe()})"
    else:
        read_options = [("format", found)]
        described = found
    dayfirst = [c for c in profile.columns if c.kind == "date" and c.dayfirst]
    dates = profile.of_kind("date")
    return {
        "agency": agency,
        "use_case": use_case,
        "source_name": source.name,
        "rows": f"{profile.rows:,}",
        "dataset": slug(source.name.split(".")[0]),
        "path": path.as_posix(),
        "layout": described,
        "read_options": read_options,
        "id_column": profile.id_column,
        "target": profile.target,
        "task": profile.task,
        "classes": profile.classes,
        "class_counts": ", ".join(f"{k} ({v:,})" for k, v in list(profile.classes.items())[:8])
        + (" ..." if len(profile.classes) > 8 else ""),
        "positive_class": profile.positive_class,
        "numeric": profile.of_kind("numeric"),
        "categorical": profile.of_kind("categorical"),
        "text": profile.of_kind("text"),
        "date": dates,
        "dayfirst": [c.name for c in dayfirst],
        "dayfirst_example": dayfirst[0].example if dayfirst else "",
        "left_out": [c for c in profile.columns if c.kind == "left out"],
        "leaks": profile.leaks,
        "split_date": dates[0] if dates else None,
        "batch_format": batch_format or None,
        "default_min_rows": f"{MIN_TRAINING_ROWS:,}",
        "min_rows": max(profile.rows, 10) if profile.rows < MIN_TRAINING_ROWS else None,
    }
