"""Each declared source as a clean table (RASFF cleaning, the business-aid generator), and its
ingestion into the parquet file that DVC versions and training reads."""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from dataclasses import dataclass

import pandas as pd

from pipelines.config import (
    DatasetSpec,
    FileSource,
    GeneratorSource,
    Source,
    TableFormat,
    UseCaseSpec,
)
from pipelines.data import business_aid, storage
from pipelines.data.row_ids import with_row_ids

log = logging.getLogger(__name__)

RASFF_COLUMNS = {
    "DATE CASE": "date_case",
    "TYPE": "type",
    "PRODUCT CATEGORY": "product_category",
    "PRODUCT": "product",
    "HAZARD": "hazard",
    "ORIGIN COUNTRY": "origin_country_raw",
    "RISK DECISION": "risk_decision",
}

UNKNOWN_COUNTRY = "unknown"

# Spellings in the RASFF export that name the same country.
COUNTRY_ALIASES = {
    "unknown origin country": UNKNOWN_COUNTRY,
    "": UNKNOWN_COUNTRY,
    "cã´te divoire": "cote d'ivoire",  # noqa: RUF001 (mojibake as it appears in the data)
    "côte d'ivoire": "cote d'ivoire",
    "faeroe islands": "faroe islands",
    "republic of north macedonia": "north macedonia",
    "the netherlands": "netherlands",
    "usa": "united states",
    "uk": "united kingdom",
    "curaçao": "curacao",
    "réunion": "reunion",
}


class SourceError(ValueError):
    """A source table lacks the columns its reader expects."""


@dataclass(frozen=True)
class Ingested:
    agency: str
    dataset: str
    path: str  # relative to the project root
    rows: int
    md5: str


def ingest(dataset: DatasetSpec) -> Ingested:
    """Read or generate the raw source, clean it, and write it atomically to the dataset's
    parquet file. The same source and code always give a byte-identical file."""
    table = load_source(dataset.source)
    target = dataset.resolved_path()
    storage.write_parquet(table, target, metadata={SOURCE_KEY: source_key(dataset.source)})
    md5 = storage.file_md5(target)
    return Ingested(dataset.agency, dataset.name, dataset.path, len(table), md5)


SOURCE_KEY = "agencyml.source"


def source_key(source: Source) -> str:
    """The source as the params declare it, stored in the ingested file's metadata. Read options
    left at their defaults are not part of it, so a source declared before they existed keeps
    its key (and its ingested file stays byte-identical)."""
    declared = source.model_dump(mode="json")
    if isinstance(source, FileSource):
        defaults = TableFormat().model_dump(mode="json")
        declared = {k: v for k, v in declared.items() if k not in defaults or v != defaults[k]}
    return json.dumps(declared, sort_keys=True)


def training_table(spec: UseCaseSpec) -> pd.DataFrame:
    """The use case's ingested dataset. It is ingested first when this checkout has none yet,
    or when the params now declare a different source than the file was ingested from."""
    path = spec.data.resolved_path()
    if not path.is_file():
        log.warning("%s is missing; ingesting it from its source first", spec.data.path)
        ingest(spec.data)
    elif storage.parquet_metadata(path).get(SOURCE_KEY) != source_key(spec.data.source):
        log.warning("%s was ingested from another source; ingesting it again", spec.data.path)
        ingest(spec.data)
    table = storage.read_table(path)
    if spec.params.id_column is None:  # no id column: one made from each row's values
        table = with_row_ids(table, leave_out={spec.params.target})
    return table


def load_source(source: Source) -> pd.DataFrame:
    """Read or generate a raw table and return it cleaned."""
    if isinstance(source, GeneratorSource):
        return business_aid.generate_applications(source.rows, source.seed)
    assert isinstance(source, FileSource)
    path = source.resolved_path()
    if source.reader == "rasff":
        return clean_rasff(storage.read_rasff_csv(path))
    return storage.read_table(path, source.table_format())


def clean_rasff(raw: pd.DataFrame) -> pd.DataFrame:
    """Rename, normalise text, parse dates and countries, then drop the rows that are now
    duplicates (so spelling variants of one notification collapse) and add a stable id."""
    missing = sorted(set(RASFF_COLUMNS) - set(raw.columns))
    if missing:
        raise SourceError(f"RASFF data lacks the columns {missing}; is this the RASFF export?")
    table = raw[list(RASFF_COLUMNS)].rename(columns=RASFF_COLUMNS)
    for column in table.columns:
        table[column] = table[column].astype(str).str.split().str.join(" ")
    for column in ("type", "product_category", "product", "hazard", "risk_decision"):
        table[column] = table[column].str.lower()
    countries = table.pop("origin_country_raw").map(split_countries)
    table["origin_country"] = countries.map(lambda names: names[0])
    table["origin_country_count"] = countries.map(
        lambda names: sum(name != UNKNOWN_COUNTRY for name in names)
    )
    table["origin_countries"] = countries.map(", ".join)
    table["date_case"] = pd.to_datetime(table["date_case"], format="%d/%m/%Y", errors="coerce")
    table = table.drop_duplicates(ignore_index=True)
    table.insert(0, "notification_id", table.apply(_row_id, axis=1))
    return table.drop(columns="origin_countries")


def split_countries(value: str) -> list[str]:
    """'Turkey,vietnam' -> ['turkey', 'vietnam']; aliases and accents are folded together."""
    names = [clean_country(part) for part in str(value).split(",")]
    known = [name for name in names if name != UNKNOWN_COUNTRY]
    return known or [UNKNOWN_COUNTRY]


def clean_country(name: str) -> str:
    folded = " ".join(name.strip().strip('"').lower().split())
    folded = COUNTRY_ALIASES.get(folded, folded)
    ascii_name = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    return COUNTRY_ALIASES.get(ascii_name, ascii_name) or UNKNOWN_COUNTRY


def _row_id(row: pd.Series) -> str:
    """A content hash, so the same notification keeps its id across reloads."""
    text = "\x1f".join(str(value) for value in row.to_numpy())
    return "rasff-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
