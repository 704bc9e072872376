"""ro-crate-metadata.json: graph shape, determinism, provenance, updates and checks."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from rocrate.rocrate import ROCrate

from ngff_resave.crate import (
    CRATE_KEY,
    CrateError,
    CrateOptions,
    Provenance,
    add_crate_arguments,
    build_crate,
    check_crate,
    check_document,
    crate_options_from_args,
    default_name,
    license_url,
    public_location,
    read_crate,
    update_crate,
    write_crate,
)
from ngff_resave.errors import ResaveError
from ngff_resave.locations import LocalStore
from ngff_resave.terms import UnknownTermError

DATE = "2024-06-01"
FULL = CrateOptions(
    license="CC-BY-4.0",
    organism="Homo sapiens",
    modality="light sheet fluorescence microscopy",
    name="Lightsheet of a human organoid",
    description="Converted for the archive.",
)
RUN = Provenance(
    software_version="0.1.0",
    input_url="s3://AKIAKEY:topsecret@bucket/in.zarr",
    output_url="https://user:pw@example.org/out.zarr?X-Amz-Signature=abc123",
    start_time="2024-06-01T10:00:00+00:00",
    end_time="2024-06-01T10:05:30+00:00",
    figures={"bytes_read": 123456, "bytes_written": 654321, "seconds": 330.5},
)


def build(options: CrateOptions = FULL, provenance: Provenance | None = RUN) -> dict[str, Any]:
    return build_crate(options, default_name="image-0", provenance=provenance, date_published=DATE)


def entities(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entity["@id"]: entity for entity in document["@graph"]}


def of_type(document: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [e for e in document["@graph"] if e["@type"] == type_]


def references(value: Any) -> list[str]:
    if isinstance(value, dict):
        return (
            [value["@id"]] if "@id" in value else [r for v in value.values() for r in references(v)]
        )
    if isinstance(value, list):
        return [r for v in value for r in references(v)]
    return []


def reachable(document: dict[str, Any]) -> set[str]:
    """Ids reachable from the metadata descriptor and the root dataset along @id links."""
    graph = entities(document)
    seen: set[str] = set()
    todo = [CRATE_KEY, "./"]
    while todo:
        current = todo.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        todo += [
            r for k, v in graph[current].items() if not k.startswith("@") for r in references(v)
        ]
    return seen


def tree_digest(root: Path, *, skip: str) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != skip
    }


# --- shape ------------------------------------------------------------------------------------


def test_crate_parses_with_rocrate_library(tmp_path: Path) -> None:
    write_crate(LocalStore(str(tmp_path)), build())
    crate = ROCrate(tmp_path)  # warnings are errors in this suite, so this also means "no warnings"
    assert crate.root_dataset["name"] == FULL.name
    assert crate.root_dataset["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert crate.root_dataset["datePublished"] == DATE
    biosample = crate.get("#biosample")
    assert biosample.type == "biosample"
    assert biosample["organism_classification"].id == "NCBI:txid9606"
    assert crate.get("#image-acquisition")["fbbi_id"].id == "obo:FBbi_00000369"
    assert crate.metadata["conformsTo"] == "https://w3id.org/ro/crate/1.1"


def test_graph_shape_that_consumers_read() -> None:
    # The validator page finds entities by exact @type string and reads the @id of the term.
    document = build()
    [biosample] = of_type(document, "biosample")
    [specimen] = of_type(document, "specimen")
    [acquisition] = of_type(document, "image_acquisition")
    assert biosample["organism_classification"] == {"@id": "NCBI:txid9606"}
    assert specimen["biosample"] == {"@id": biosample["@id"]}
    assert acquisition["specimen"] == {"@id": specimen["@id"]}
    assert acquisition["fbbi_id"] == {"@id": "obo:FBbi_00000369"}
    root = entities(document)["./"]
    assert root["resultOf"] == {"@id": acquisition["@id"]}
    # The page shows the first entity with a name/license: that must be the root dataset.
    assert next(e for e in document["@graph"] if "name" in e) is root
    assert next(e for e in document["@graph"] if "license" in e) is root


def test_stable_ids_and_context_terms() -> None:
    document = build()
    assert set(entities(document)) == {
        "./",
        CRATE_KEY,
        "#image-acquisition",
        "#specimen",
        "#biosample",
        "NCBI:txid9606",
        "obo:FBbi_00000369",
        "#conversion",
        "#ngff-resave",
        "#input",
        "#cost-bytes_read",
        "#cost-bytes_written",
        "#cost-seconds",
    }
    base, terms = document["@context"]
    assert base == "https://w3id.org/ro/crate/1.1/context"
    for term in ("biosample", "specimen", "image_acquisition", "organism_classification"):
        assert term in terms
    for term in ("fbbi_id", "resultOf", "NCBI", "obo"):
        assert term in terms
    assert terms["obo"] == "http://purl.obolibrary.org/obo/"
    assert entities(document)["NCBI:txid9606"]["url"] == (
        "http://purl.obolibrary.org/obo/NCBITaxon_9606"
    )


def test_every_entity_is_reachable_from_the_root() -> None:
    for document in (build(), build(provenance=None)):
        assert reachable(document) == set(entities(document))
        assert check_document(document) == []


def test_rerun_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_crate(LocalStore(str(first)), build())
    write_crate(LocalStore(str(second)), build())
    data = (first / CRATE_KEY).read_bytes()
    assert data == (second / CRATE_KEY).read_bytes()
    assert data.endswith(b"}\n")
    assert data.startswith(b'{\n  "@context"')
    assert data == (json.dumps(json.loads(data), indent=2, sort_keys=True) + "\n").encode()


def test_modality_without_organism_is_written() -> None:
    document = build(CrateOptions(license="CC0-1.0", modality="confocal"), provenance=None)
    assert of_type(document, "biosample") == []
    assert of_type(document, "specimen") == []
    [acquisition] = of_type(document, "image_acquisition")
    assert acquisition["fbbi_id"] == {"@id": "obo:FBbi_00000251"}
    assert "specimen" not in acquisition
    assert entities(document)["./"]["resultOf"] == {"@id": acquisition["@id"]}
    assert entities(document)["./"]["name"] == "image-0"  # default_name
    assert check_document(document) == []


def test_organism_without_modality_keeps_the_chain() -> None:
    document = build(CrateOptions(license="CC0-1.0", organism="mouse"), provenance=None)
    [acquisition] = of_type(document, "image_acquisition")
    assert "fbbi_id" not in acquisition
    assert of_type(document, "biosample")[0]["organism_classification"] == {"@id": "NCBI:txid10090"}
    assert check_document(document) == []


def test_no_terms_means_no_acquisition_chain() -> None:
    document = build(CrateOptions(license="CC0-1.0"), provenance=None)
    assert set(entities(document)) == {"./", CRATE_KEY}
    assert "resultOf" not in entities(document)["./"]


def test_unknown_organism_error_lists_suggestions() -> None:
    with pytest.raises(UnknownTermError, match=r"Homo sapiens \(NCBI:txid9606\)"):
        build(CrateOptions(license="CC-BY-4.0", organism="homo sapien"))


# --- license, dates, figures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/"),
        ("cc-by-4.0", "https://creativecommons.org/licenses/by/4.0/"),
        ("CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("CC-BY-NC-SA-4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
        ("https://example.org/my-license", "https://example.org/my-license"),
    ],
)
def test_license_url(text: str, url: str) -> None:
    assert license_url(text) == url


@pytest.mark.parametrize("text", ["GPL", "", "CC-BY-5.0", "ftp://example.org/license"])
def test_unknown_license_is_a_clear_error(text: str) -> None:
    with pytest.raises(CrateError, match=r"CC-BY-4\.0, CC0-1\.0"):
        license_url(text)


def test_license_is_required() -> None:
    with pytest.raises(CrateError, match="needs a license"):
        build(CrateOptions(organism="human"))


def test_bad_dates_and_figures_are_errors() -> None:
    with pytest.raises(CrateError, match="datePublished"):
        build_crate(FULL, default_name="x", provenance=None, date_published="yesterday")
    bad_run = Provenance("0.1.0", "in", "out", "2024-06-01", "2024-06-01", {"speed": float("nan")})
    with pytest.raises(CrateError, match="speed"):
        build(provenance=bad_run)
    assert issubclass(CrateError, ResaveError) and issubclass(CrateError, ValueError)


# --- provenance -------------------------------------------------------------------------------


def test_provenance_create_action() -> None:
    graph = entities(build())
    action = graph["#conversion"]
    assert action["@type"] == "CreateAction"
    assert action["instrument"] == {"@id": "#ngff-resave"}
    assert graph["#ngff-resave"]["softwareVersion"] == "0.1.0"
    assert action["object"] == {"@id": "#input"}
    assert action["result"] == {"@id": "./"}
    assert (action["startTime"], action["endTime"]) == (RUN.start_time, RUN.end_time)
    figures = {
        graph[r]["name"]: graph[r]["value"] for r in references(action["additionalProperty"])
    }
    assert figures == dict(RUN.figures)
    assert graph["./"]["mentions"] == {"@id": "#conversion"}


@pytest.mark.parametrize(
    ("location", "public"),
    [
        ("s3://AKIAKEY:topsecret@bucket/in.zarr", "s3://bucket/in.zarr"),
        (
            "https://user:pw@host.org:8443/data/in.zarr?X-Amz-Signature=abc&X-Amz-Credential=k",
            "https://host.org:8443/data/in.zarr",
        ),
        ("http://host/in.zarr#frag", "http://host/in.zarr"),
        ("/data/in.zarr", "/data/in.zarr"),
        ("relative/in.zarr", "relative/in.zarr"),
    ],
)
def test_public_location_strips_credentials(location: str, public: str) -> None:
    assert public_location(location) == public


def test_credentials_never_reach_the_file(tmp_path: Path) -> None:
    write_crate(LocalStore(str(tmp_path)), build())
    text = (tmp_path / CRATE_KEY).read_text()
    for secret in ("topsecret", "AKIAKEY", "user:pw", "X-Amz-Signature", "abc123"):
        assert secret not in text
    assert entities(json.loads(text))["#input"]["url"] == "s3://bucket/in.zarr"


# --- update (ngff-resave crate OUT) -----------------------------------------------------------


def make_output(root: Path) -> LocalStore:
    (root / "0" / "c" / "0").mkdir(parents=True)
    (root / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group"}')
    (root / "0" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"}')
    (root / "0" / "c" / "0" / "0").write_bytes(bytes(range(256)))
    return LocalStore(str(root))


def test_update_touches_only_the_crate_and_keeps_provenance(tmp_path: Path) -> None:
    store = make_output(tmp_path)
    write_crate(store, build())
    before = tree_digest(tmp_path, skip=CRATE_KEY)

    document = update_crate(
        store,
        CrateOptions(organism="mouse", name="Renamed"),
        default_name="ignored",
        date_published="2030-01-01",
    )

    assert tree_digest(tmp_path, skip=CRATE_KEY) == before
    assert read_crate(store) == document
    graph = entities(document)
    assert graph["./"]["name"] == "Renamed"
    assert graph["./"]["description"] == FULL.description
    assert graph["./"]["datePublished"] == DATE  # the first publication date stays
    assert graph["#conversion"] == entities(build())["#conversion"]
    assert of_type(document, "biosample")[0]["organism_classification"] == {"@id": "NCBI:txid10090"}
    assert "NCBI:txid9606" not in graph  # the replaced taxon's term entity is gone
    assert graph["#image-acquisition"]["fbbi_id"] == {"@id": "obo:FBbi_00000369"}
    assert check_crate(store) == []


def test_update_is_idempotent(tmp_path: Path) -> None:
    store = make_output(tmp_path)
    write_crate(store, build())
    options = CrateOptions(modality="TEM")
    update_crate(store, options, default_name="x", date_published=DATE)
    once = (tmp_path / CRATE_KEY).read_bytes()
    update_crate(store, options, default_name="x", date_published=DATE)
    assert (tmp_path / CRATE_KEY).read_bytes() == once


def test_update_creates_a_crate_when_there_is_none(tmp_path: Path) -> None:
    store = make_output(tmp_path)
    document = update_crate(
        store, CrateOptions(license="CC0-1.0"), default_name="plate-1", date_published=DATE
    )
    assert entities(document)["./"]["name"] == "plate-1"
    assert (tmp_path / CRATE_KEY).exists()


def test_update_without_license_writes_nothing(tmp_path: Path) -> None:
    store = make_output(tmp_path)
    with pytest.raises(CrateError, match="license"):
        update_crate(store, CrateOptions(organism="human"), default_name="x", date_published=DATE)
    assert not (tmp_path / CRATE_KEY).exists()


def test_update_amends_a_challenge_tool_crate_in_place(tmp_path: Path) -> None:
    # The shape the 2024 challenge tool wrote: random ids, no acquisition link from the root.
    legacy = {
        "@context": [
            "https://w3id.org/ro/crate/1.1/context",
            {"biosample": "http://purl.obolibrary.org/obo/OBI_0002648", "custom": "urn:x:custom"},
        ],
        "@graph": [
            {"@id": "./", "@type": "Dataset", "name": "old", "datePublished": "2024-08-01"},
            {
                "@id": CRATE_KEY,
                "@type": "CreativeWork",
                "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
                "about": {"@id": "./"},
            },
            {
                "@id": "#aaaa",
                "@type": "biosample",
                "organism_classification": {"@id": "NCBI:txid7227"},
            },
            {"@id": "#bbbb", "@type": "specimen", "biosample": {"@id": "#aaaa"}},
        ],
    }
    store = make_output(tmp_path)
    (tmp_path / CRATE_KEY).write_text(json.dumps(legacy))
    document = update_crate(
        store,
        CrateOptions(license="CC-BY-4.0", modality="confocal"),
        default_name="x",
        date_published=DATE,
    )
    assert [e["@id"] for e in of_type(document, "biosample")] == ["#aaaa"]
    assert [e["@id"] for e in of_type(document, "specimen")] == ["#bbbb"]
    [acquisition] = of_type(document, "image_acquisition")
    assert acquisition["specimen"] == {"@id": "#bbbb"}
    assert "custom" in document["@context"][1]  # terms someone else defined are kept
    assert entities(document)["./"]["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert check_document(document) == []  # the specimen it left unlinked is now in the chain


def test_corrupt_existing_crate_is_a_clear_error(tmp_path: Path) -> None:
    store = make_output(tmp_path)
    (tmp_path / CRATE_KEY).write_text("{not json")
    with pytest.raises(CrateError, match="not valid JSON"):
        update_crate(store, FULL, default_name="x", date_published=DATE)


# --- check_crate (validate) -------------------------------------------------------------------


def write_json(tmp_path: Path, document: dict[str, Any]) -> LocalStore:
    (tmp_path / CRATE_KEY).write_text(json.dumps(document))
    return LocalStore(str(tmp_path))


def test_check_crate_absent_and_clean(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    assert check_crate(store) == []
    write_crate(store, build())
    assert check_crate(store) == []


def test_check_crate_flags_an_unlinked_entity(tmp_path: Path) -> None:
    document = build()
    document["@graph"].append({"@id": "#orphan", "@type": "specimen"})
    problems = check_crate(write_json(tmp_path, document))
    assert len(problems) == 1
    assert "'#orphan' is not reachable from the root dataset" in problems[0]
    assert problems[0].startswith(str(tmp_path))


def test_check_crate_flags_a_missing_license(tmp_path: Path) -> None:
    document = build()
    del entities(document)["./"]["license"]
    assert [p.split(": ", 1)[1] for p in check_crate(write_json(tmp_path, document))] == [
        "the root dataset has no license"
    ]


def test_check_crate_flags_undefined_terms_and_prefixes(tmp_path: Path) -> None:
    document = build()
    document["@context"] = ["https://w3id.org/ro/crate/1.1/context"]  # no extra terms at all
    problems = " | ".join(check_crate(write_json(tmp_path, document)))
    for term in ("biosample", "organism_classification", "fbbi_id", "image_acquisition"):
        assert repr(term) in problems
    assert "prefix 'NCBI' of id 'NCBI:txid9606'" in problems
    assert "prefix 'obo' of id 'obo:FBbi_00000369'" in problems


def test_check_crate_flags_structure(tmp_path: Path) -> None:
    (tmp_path / CRATE_KEY).write_text("[1, 2")
    assert "not valid JSON" in check_crate(LocalStore(str(tmp_path)))[0]
    problems = check_document({"@context": [], "@graph": [{"@id": "./", "@type": "Dataset"}]})
    assert f"no metadata descriptor entity '{CRATE_KEY}'" in problems
    assert "entity './' is not reachable from the root dataset" in problems


# --- command line helpers ---------------------------------------------------------------------


def test_crate_arguments_round_trip() -> None:
    parser = argparse.ArgumentParser()
    add_crate_arguments(parser)
    args = parser.parse_args(
        ["--rocrate-license", "CC-BY-4.0", "--rocrate-organism", "human", "--rocrate-name", " "]
    )
    assert crate_options_from_args(args) == CrateOptions(license="CC-BY-4.0", organism="human")
    assert crate_options_from_args(argparse.Namespace()) == CrateOptions()


def test_default_name_from_ome_metadata() -> None:
    assert default_name({"multiscales": [{"name": "img"}]}, "out.zarr") == "img"
    assert default_name({"plate": {"name": "P1"}}, "out.zarr") == "P1"
    assert default_name({"multiscales": [{}]}, "out.zarr") == "out.zarr"
