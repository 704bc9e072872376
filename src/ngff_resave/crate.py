"""RO-Crate metadata (``ro-crate-metadata.json``) at the root of a converted OME-Zarr 0.5 output.

The graph keeps the shape that the OME-NGFF validator page and the 2024 challenge tooling read
(they look for the entity whose ``@type`` is exactly ``"biosample"`` and read
``organism_classification.@id``, and for ``"image_acquisition"`` and read ``fbbi_id.@id``)::

    ./ (Dataset: name, description, license URL, datePublished)
     ├─ resultOf ─► #image-acquisition (image_acquisition, fbbi_id ─► obo:FBbi_…)
     │               └─ specimen ─► #specimen (specimen)
     │                               └─ biosample ─► #biosample (biosample,
     │                                                organism_classification ─► NCBI:txid…)
     └─ mentions ─► #conversion (CreateAction: instrument ─► #ngff-resave, object ─► #input,
                                 result ─► ./, startTime, endTime, additionalProperty ─► #cost-…)

Unlike the reference converter: a modality without an organism is still written, every entity
is reachable from the root, ids are fixed strings (the same inputs give byte-identical files),
every term is defined in ``@context``, and the license is a URL. The graph is built with the
``rocrate`` library; only the JSON encoding (sorted keys, two-space indent) is ours, so the file
is stable.
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rocrate import vocabs
from rocrate.model.contextentity import ContextEntity
from rocrate.model.entity import Entity
from rocrate.rocrate import ROCrate

from ngff_resave.crateoptions import (  # re-exported: the crate API in one place
    CrateOptions as CrateOptions,
)
from ngff_resave.crateoptions import (
    add_crate_arguments as add_crate_arguments,
)
from ngff_resave.crateoptions import (
    crate_options_from_args as crate_options_from_args,
)
from ngff_resave.errors import ResaveError
from ngff_resave.locations import Store
from ngff_resave.terms import Term, resolve_modality, resolve_organism

#: Where the crate lives, relative to the output root.
CRATE_KEY = "ro-crate-metadata.json"
#: RO-Crate 1.1: the version the challenge crates and the OME-Zarr RO-Crate profile use.
RO_CRATE_VERSION = "1.1"

#: Terms this crate uses beyond the RO-Crate context. The first block is the one the
#: OME-Zarr RO-Crate profile requires (values as there, including its ``acquisiton_method``
#: spelling); the rest defines what the challenge crates used without defining.
CONTEXT_TERMS: dict[str, Any] = {
    "organism_classification": "https://schema.org/taxonomicRange",
    "obo": "http://purl.obolibrary.org/obo/",
    "acquisiton_method": {"@reverse": "https://schema.org/result", "@type": "@id"},
    "biological_entity": "https://schema.org/about",
    "biosample": "http://purl.obolibrary.org/obo/OBI_0002648",
    "specimen": "http://purl.obolibrary.org/obo/HSO_0000308",
    # FBbi:00000222 "imaging method": an image_acquisition is one use of a method.
    "image_acquisition": "http://purl.obolibrary.org/obo/FBbi_00000222",
    "fbbi_id": "https://schema.org/measurementTechnique",
    "resultOf": {"@reverse": "https://schema.org/result", "@type": "@id"},
    # "NCBI:txid9606" is the challenge's spelling of a taxon id; each taxon entity in the graph
    # also carries its resolvable OBO PURL as ``url``.
    "NCBI": "https://www.ncbi.nlm.nih.gov/taxonomy/",
}

ROOT_ID = "./"
ACQUISITION_ID = "#image-acquisition"
SPECIMEN_ID = "#specimen"
BIOSAMPLE_ID = "#biosample"
ACTION_ID = "#conversion"
SOFTWARE_ID = "#ngff-resave"
INPUT_ID = "#input"

_CC = "https://creativecommons.org/licenses"
_LICENSES = {
    "cc-by-4.0": f"{_CC}/by/4.0/",
    "cc-by": f"{_CC}/by/4.0/",
    "cc-by-sa-4.0": f"{_CC}/by-sa/4.0/",
    "cc-by-nd-4.0": f"{_CC}/by-nd/4.0/",
    "cc-by-nc-4.0": f"{_CC}/by-nc/4.0/",
    "cc-by-nc-sa-4.0": f"{_CC}/by-nc-sa/4.0/",
    "cc-by-nc-nd-4.0": f"{_CC}/by-nc-nd/4.0/",
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "cc0": "https://creativecommons.org/publicdomain/zero/1.0/",
}
_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)
_ABSOLUTE_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: Id schemes that are not compact IRIs, so need no prefix in @context.
_SCHEMES = frozenset({"urn", "mailto", "doi", "arcp", "file", "data", "tag"})


class CrateError(ResaveError, ValueError):
    """The RO-Crate options or an existing ``ro-crate-metadata.json`` are invalid."""


@dataclass(frozen=True)
class Provenance:
    """One conversion run, recorded as a ``CreateAction``.

    ``figures`` are the run's cost figures from the report, with self-describing keys
    (``bytes_read``, ``bytes_written``, ``seconds``, ``bytes_per_second``…).
    Times are ISO 8601 strings, passed in so the crate does not depend on the clock.
    """

    software_version: str
    input_url: str
    output_url: str
    start_time: str
    end_time: str
    figures: Mapping[str, float | int] = field(default_factory=dict)


# --- small pure helpers -----------------------------------------------------------------------


def license_url(text: str) -> str:
    """The license as a URL: ``CC-BY-4.0`` and the other CC 4.0 SPDX ids, ``CC0-1.0``, or an
    ``http(s)://`` URL as given. Anything else is a :class:`CrateError`."""
    stripped = text.strip()
    if _URL.match(stripped):
        return stripped
    if url := _LICENSES.get(stripped.casefold()):
        return url
    raise CrateError(
        f"unknown license {text!r}; give CC-BY-4.0, CC0-1.0 (or another Creative Commons 4.0 "
        "SPDX id such as CC-BY-SA-4.0) or the license's http(s) URL"
    )


def public_location(location: str) -> str:
    """``location`` without credentials: user/password, query string (pre-signed URL
    signatures) and fragment are removed from URLs; local paths are returned as they are."""
    parts = urlsplit(location)
    if len(parts.scheme) < 2 or not parts.netloc:  # a local path (or a Windows drive letter)
        return location
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _iso(value: str, what: str) -> str:
    """``value`` if it is an ISO 8601 date or date-time, else a :class:`CrateError`."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise CrateError(
            f"{what} {value!r} is not an ISO 8601 date or time (e.g. 2024-06-01T12:00:00Z)"
        ) from None
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _refs(value: Any) -> Iterator[str]:
    """Every ``{"@id": …}`` reference inside a property value."""
    if isinstance(value, dict):
        if isinstance(value.get("@id"), str):
            yield value["@id"]
        else:
            for item in value.values():
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


def _entity_refs(entity: Mapping[str, Any]) -> Iterator[str]:
    for key, value in entity.items():
        if not key.startswith("@"):
            yield from _refs(value)


def default_name(ome_attributes: Mapping[str, Any], fallback: str) -> str:
    """The crate's default name: the image (``multiscales[0].name``) or plate (``plate.name``)
    name of the output's ``ome`` attributes, else ``fallback`` (e.g. the output's basename)."""
    multiscales = ome_attributes.get("multiscales")
    if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], Mapping):
        name = multiscales[0].get("name")
        if isinstance(name, str) and name.strip():
            return name
    plate = ome_attributes.get("plate")
    if isinstance(plate, Mapping) and isinstance(plate.get("name"), str) and plate["name"].strip():
        return str(plate["name"])
    return fallback


# --- building the graph -----------------------------------------------------------------------


def _types(entity: Entity) -> list[Any]:
    return _as_list(entity.properties().get("@type"))


def _linked(crate: ROCrate, owner: Entity, keys: tuple[str, ...], type_: str) -> Entity | None:
    """The first entity of ``@type`` ``type_`` that ``owner`` links to through ``keys``."""
    for key in keys:
        for ref in _refs(owner.properties().get(key)):
            target = crate.get(ref)
            if isinstance(target, Entity) and type_ in _types(target):
                return target
    return None


def _first_of_type(crate: ROCrate, type_: str) -> Entity | None:
    for entity in crate.get_entities():
        if type_ in _types(entity):
            return entity
    return None


def _link(owner: Entity, key: str, target: Entity) -> None:
    """Make ``owner[key]`` point at ``target``, keeping other links already there."""
    current = owner.properties().get(key)
    if target.id in set(_refs(current)):
        return
    if current is None:
        owner[key] = target
    else:
        owner.append_to(key, target)


def _found(crate: ROCrate, owner: Entity, keys: tuple[str, ...], type_: str) -> Entity | None:
    """The ``type_`` entity linked from ``owner``, else any (crates written by other tools)."""
    return _linked(crate, owner, keys, type_) or _first_of_type(crate, type_)


def _ensure(
    crate: ROCrate, owner: Entity, keys: tuple[str, ...], type_: str, new_id: str
) -> Entity:
    """:func:`_found`, created with id ``new_id`` if the crate has none; linked from ``owner``
    through ``keys[0]``."""
    entity = _found(crate, owner, keys, type_)
    if entity is None:
        entity = crate.add(ContextEntity(crate, new_id, properties={"@type": type_}))
    _link(owner, keys[0], entity)
    return entity


def _referenced(crate: ROCrate) -> set[str]:
    return {ref for entity in crate.get_entities() for ref in _entity_refs(entity.properties())}


def _set_term(crate: ROCrate, owner: Entity, key: str, term: Term) -> None:
    """``owner[key] = {"@id": term.id}`` plus a ``DefinedTerm`` entity naming the term (so the
    id is self-describing and reachable); the term entity it replaces goes if now unused."""
    old = set(_refs(owner.properties().get(key))) - {term.id}
    owner[key] = {"@id": term.id}
    if crate.get(term.id) is None:
        properties: dict[str, Any] = {"@type": "DefinedTerm", "termCode": term.id, "url": term.iri}
        if term.label != term.id:
            properties["name"] = term.label
        crate.add(ContextEntity(crate, term.id, properties=properties))
    still_used = _referenced(crate)
    for stale in sorted(old - still_used):
        entity = crate.get(stale)
        if isinstance(entity, Entity) and "DefinedTerm" in _types(entity):
            crate.delete(entity)


def _resolve_terms(options: CrateOptions) -> tuple[Term | None, Term | None]:
    organism = resolve_organism(options.organism) if options.organism else None
    modality = resolve_modality(options.modality) if options.modality else None
    return organism, modality


def check_options(options: CrateOptions, *, require_license: bool = True) -> None:
    """Raise now (before hours of copying) if the options cannot make a crate: unknown organism
    or modality, unknown license, or no license when one is required."""
    _resolve_terms(options)
    if options.license is not None:
        license_url(options.license)
    elif require_license:
        raise CrateError(
            "an RO-Crate needs a license: give --rocrate-license CC-BY-4.0, CC0-1.0 or a URL"
        )


def _apply(
    crate: ROCrate,
    options: CrateOptions,
    *,
    default_name: str,
    date_published: str,
    keep_date: bool,
) -> None:
    """Write the given options into ``crate`` (fields that are ``None`` stay as they are)."""
    organism, modality = _resolve_terms(options)
    root = crate.root_dataset
    props = root.properties()
    if options.name:
        root["name"] = options.name
    elif not props.get("name"):
        root["name"] = default_name
    if options.description:
        root["description"] = options.description
    if options.license:
        root["license"] = license_url(options.license)
    if not (keep_date and props.get("datePublished")):
        root["datePublished"] = _iso(date_published, "datePublished")

    if organism is None and modality is None:
        return
    acquisition = _ensure(crate, root, ("resultOf",), "image_acquisition", ACQUISITION_ID)
    if modality is not None:
        _set_term(crate, acquisition, "fbbi_id", modality)
    # A specimen/biosample already in the crate (e.g. one the challenge tool left unlinked) is
    # linked into the chain even when only the modality changes.
    specimen = _found(crate, acquisition, ("specimen",), "specimen")
    if specimen is None and organism is not None:
        specimen = crate.add(ContextEntity(crate, SPECIMEN_ID, properties={"@type": "specimen"}))
    if specimen is None:
        return
    _link(acquisition, "specimen", specimen)
    # The challenge tool's Specimen class links its biosample as "specimen"; read both.
    biosample = _found(crate, specimen, ("biosample", "specimen"), "biosample")
    if biosample is None and organism is not None:
        biosample = crate.add(ContextEntity(crate, BIOSAMPLE_ID, properties={"@type": "biosample"}))
    if biosample is None:
        return
    _link(specimen, "biosample", biosample)
    if organism is not None:
        _set_term(crate, biosample, "organism_classification", organism)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "figure"


def _add_provenance(crate: ROCrate, provenance: Provenance) -> None:
    source = public_location(provenance.input_url)
    target = public_location(provenance.output_url)
    software = crate.add(
        ContextEntity(
            crate,
            SOFTWARE_ID,
            properties={
                "@type": "SoftwareApplication",
                "name": "ngff-resave",
                "softwareVersion": provenance.software_version,
            },
        )
    )
    input_properties: dict[str, Any] = {
        "@type": "Dataset",
        "name": source,
        "description": "The OME-Zarr 0.4 hierarchy this dataset was converted from.",
    }
    if urlsplit(source).netloc:
        input_properties["url"] = source
    source_entity = crate.add(ContextEntity(crate, INPUT_ID, properties=input_properties))

    figures: list[Entity] = []
    used: set[str] = set()
    for key, value in sorted(provenance.figures.items()):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise CrateError(f"cost figure {key!r} = {value!r} is not a finite number")
        figure_id = f"#cost-{_slug(key)}"
        while figure_id in used:
            figure_id += "_"
        used.add(figure_id)
        figures.append(
            crate.add(
                ContextEntity(
                    crate,
                    figure_id,
                    properties={
                        "@type": "PropertyValue",
                        "name": key,
                        "propertyID": key,
                        "value": value,
                    },
                )
            )
        )
    action = crate.add_action(
        software,
        identifier=ACTION_ID,
        object=source_entity,
        result=crate.root_dataset,
        properties={
            "@type": "CreateAction",
            "name": "Conversion from OME-Zarr 0.4 to OME-Zarr 0.5",
            "description": (
                f"Converted {source} to {target} with ngff-resave {provenance.software_version}."
            ),
            "startTime": _iso(provenance.start_time, "startTime"),
            "endTime": _iso(provenance.end_time, "endTime"),
        },
    )
    if figures:
        action["additionalProperty"] = figures
    # The action points at the root (result); the root mentions it so it is reachable from ./.
    _link(crate.root_dataset, "mentions", action)


def _document(crate: ROCrate, context: Any = None) -> dict[str, Any]:
    """The JSON-LD document: ``crate``'s graph with our terms added to ``context`` (the existing
    crate's context when updating, so terms and contexts others added are kept)."""
    extra_contexts: list[Any] = []
    terms: dict[str, Any] = {}
    for item in _as_list(context):
        if isinstance(item, dict):
            terms.update(item)
        elif isinstance(item, str) and not item.startswith("https://w3id.org/ro/crate/"):
            extra_contexts.append(item)
    terms.update(CONTEXT_TERMS)
    crate.metadata.extra_contexts = extra_contexts
    crate.metadata.extra_terms = terms
    # A JSON round trip detaches the result from the library's entity objects.
    document: dict[str, Any] = json.loads(json.dumps(crate.metadata.generate()))
    return document


def build_crate(
    options: CrateOptions,
    *,
    default_name: str,
    provenance: Provenance | None,
    date_published: str,
) -> dict[str, Any]:
    """The ``ro-crate-metadata.json`` document (RO-Crate 1.1) for a converted output.

    ``default_name`` is used when ``options.name`` is not given (the image or plate name, see
    :func:`default_name`). A license is required. Deterministic: no random ids, no clock.
    """
    check_options(options, require_license=True)
    crate = ROCrate(version=RO_CRATE_VERSION)
    _apply(
        crate, options, default_name=default_name, date_published=date_published, keep_date=False
    )
    if provenance is not None:
        _add_provenance(crate, provenance)
    return _document(crate)


# --- storage ----------------------------------------------------------------------------------


def encode_crate(document: Mapping[str, Any]) -> bytes:
    """Stable bytes: sorted keys, two-space indent, UTF-8, trailing newline."""
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def write_crate(store: Store, document: Mapping[str, Any]) -> None:
    """Write ``document`` as ``ro-crate-metadata.json`` at the store's root (atomically)."""
    store.write(CRATE_KEY, encode_crate(document))


def read_crate(store: Store) -> dict[str, Any] | None:
    """The parsed ``ro-crate-metadata.json`` of ``store``, or ``None`` if there is none."""
    raw = store.read(CRATE_KEY)
    if raw is None:
        return None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CrateError(
            f"{store.describe(CRATE_KEY)} is not valid JSON ({exc}); fix or delete it"
        ) from None
    if not isinstance(document, dict):
        raise CrateError(f"{store.describe(CRATE_KEY)} is not a JSON object; fix or delete it")
    return document


def _load(document: Mapping[str, Any], where: str) -> ROCrate:
    """Parse an existing crate with the rocrate library (which consumes its input: copy)."""
    with warnings.catch_warnings():
        # Its warnings are about the shape of someone else's file, which we only amend.
        warnings.simplefilter("ignore")
        try:
            return ROCrate(copy.deepcopy(dict(document)))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise CrateError(
                f"{where} is not a readable RO-Crate ({exc}); fix or delete it"
            ) from None


def update_crate(
    store: Store, options: CrateOptions, *, default_name: str, date_published: str
) -> dict[str, Any]:
    """``ngff-resave crate OUT``: merge the given options into the existing crate, or create one.

    Only ``ro-crate-metadata.json`` is written. The provenance and anything else already in the
    crate stay; the first ``datePublished`` is kept. Returns the document written.
    """
    existing = read_crate(store)
    if existing is None:
        document = build_crate(
            options, default_name=default_name, provenance=None, date_published=date_published
        )
    else:
        check_options(options, require_license=False)
        crate = _load(existing, store.describe(CRATE_KEY))
        _apply(
            crate, options, default_name=default_name, date_published=date_published, keep_date=True
        )
        if not crate.root_dataset.properties().get("license"):
            raise CrateError(
                f"{store.describe(CRATE_KEY)} has no license; give --rocrate-license "
                "CC-BY-4.0, CC0-1.0 or a URL"
            )
        document = _document(crate, existing.get("@context"))
    write_crate(store, document)
    return document


# --- checking ---------------------------------------------------------------------------------


def _context_terms(context: Any) -> tuple[set[str], bool]:
    """Terms defined by ``context`` and whether we know all of it (remote contexts other than
    RO-Crate's cannot be read offline; their terms are then not checked)."""
    known: set[str] = set()
    complete = True
    for item in _as_list(context):
        if isinstance(item, dict):
            known.update(item)
        elif isinstance(item, str) and item.startswith("https://w3id.org/ro/crate/"):
            # The library bundles the newest RO-Crate context, a superset of 1.1's.
            known.update(vocabs.RO_CRATE["@context"])
        else:
            complete = False
    return known, complete


def _defined(term: str, known: set[str]) -> bool:
    if term in known or _ABSOLUTE_IRI.match(term):
        return True
    prefix, colon, _rest = term.partition(":")
    return bool(colon) and (prefix in known or prefix in _SCHEMES)


def _check_terms(context: Any, entities: Mapping[str, Mapping[str, Any]]) -> list[str]:
    known, complete = _context_terms(context)
    if not complete:
        return []
    problems = []
    for entity_id, entity in entities.items():
        for key in entity:
            if not key.startswith("@") and not _defined(key, known):
                problems.append(f"property {key!r} of {entity_id!r} is not defined in @context")
        for type_ in _as_list(entity.get("@type")):
            if isinstance(type_, str) and not _defined(type_, known):
                problems.append(f"type {type_!r} of {entity_id!r} is not defined in @context")
        for ref in (entity_id, *_entity_refs(entity)):
            prefix, colon, _rest = ref.partition(":")
            if colon and not ref.startswith(("#", ".")) and not _defined(ref, known):
                problems.append(f"prefix {prefix!r} of id {ref!r} is not defined in @context")
    return problems


def check_document(document: Any) -> list[str]:
    """Problems of a crate document (pure): structure, root dataset, license, entities not
    reachable from the root, terms and id prefixes missing from ``@context``."""
    if not isinstance(document, dict):
        return ["the document is not a JSON object"]
    problems: list[str] = []
    if "@context" not in document:
        problems.append("no @context")
    graph = document.get("@graph")
    if not isinstance(graph, list):
        return [*problems, "no @graph list"]
    entities: dict[str, dict[str, Any]] = {}
    for index, entity in enumerate(graph):
        if not isinstance(entity, dict) or not isinstance(entity.get("@id"), str):
            problems.append(f"@graph[{index}] is not an entity with an @id")
        elif entity["@id"] in entities:
            problems.append(f"entity {entity['@id']!r} appears more than once in @graph")
        else:
            entities[entity["@id"]] = entity

    starts = [CRATE_KEY]
    descriptor = entities.get(CRATE_KEY)
    if descriptor is None:
        problems.append(f"no metadata descriptor entity {CRATE_KEY!r}")
    else:
        about = list(_refs(descriptor.get("about")))
        if len(about) != 1:
            problems.append(f"the descriptor's 'about' must name the root dataset, got {about}")
        else:
            starts.append(about[0])
            root = entities.get(about[0])
            if root is None:
                problems.append(f"the root dataset {about[0]!r} is not in @graph")
            else:
                if "Dataset" not in _as_list(root.get("@type")):
                    problems.append("the root dataset's @type does not include 'Dataset'")
                for key in ("name", "license", "datePublished"):
                    if not root.get(key):
                        problems.append(f"the root dataset has no {key}")

    reached: set[str] = set()
    pending = [start for start in starts if start in entities]
    while pending:
        current = pending.pop()
        if current in reached:
            continue
        reached.add(current)
        pending.extend(ref for ref in _entity_refs(entities[current]) if ref in entities)
    for entity_id in entities:
        if entity_id not in reached:
            problems.append(f"entity {entity_id!r} is not reachable from the root dataset")

    problems.extend(_check_terms(document.get("@context"), entities))
    return problems


def check_crate(store: Store) -> list[str]:
    """Problems of the store's ``ro-crate-metadata.json`` (for ``validate``); ``[]`` when it is
    fine or absent. Also reports what the rocrate library fails on or warns about."""
    where = store.describe(CRATE_KEY)
    try:
        document = read_crate(store)
    except CrateError as exc:
        return [str(exc)]
    if document is None:
        return []
    problems = check_document(document)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ROCrate(copy.deepcopy(document))
        except Exception as exc:  # a validator reports; hostile input must not crash it
            problems.append(f"the rocrate library cannot read it: {exc}")
    problems.extend(f"rocrate library warning: {warning.message}" for warning in caught)
    return [f"{where}: {problem}" for problem in dict.fromkeys(problems)]
