"""The built-in organism (NCBI Taxonomy) and modality (FBbi) tables and their lookups."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from ngff_resave.errors import ResaveError
from ngff_resave.terms import (
    MODALITIES,
    ORGANISMS,
    Term,
    UnknownTermError,
    format_lookup,
    lookup,
    resolve_modality,
    resolve_organism,
)

# Ids pinned to their source: FBbi from fbbi.obo (releases/2020-11-06) and the current FBbi edit
# file (FBbi:00100015); taxa from NCBI Taxonomy. A change here must be a deliberate correction.
PINNED_MODALITIES = {
    "bright-field microscopy": "obo:FBbi_00000243",
    "differential interference contrast microscopy": "obo:FBbi_00000245",
    "fluorescence microscopy": "obo:FBbi_00000246",
    "phase contrast microscopy": "obo:FBbi_00000247",
    "confocal microscopy": "obo:FBbi_00000251",
    "spinning disk confocal microscopy": "obo:FBbi_00000253",
    "two-photon laser scanning microscopy": "obo:FBbi_00000254",
    "SPIM": "obo:FBbi_00000369",
    "scanning electron microscopy (SEM)": "obo:FBbi_00000257",
    "transmission electron microscopy (TEM)": "obo:FBbi_00000258",
    "focussed ion beam scanning electron microscopy (FIB-SEM)": "obo:FBbi_00050000",
    "structured illumination microscopy (SIM)": "obo:FBbi_00000332",
    "stimulated emission depletion (STED)": "obo:FBbi_00000334",
    "PALM (photoactivation localization microscopy)": "obo:FBbi_00000335",
    "STORM (stochastic optical reconstruction microscopy)": "obo:FBbi_00000336",
    "cryogenic electron tomography": "obo:FBbi_00100015",
}
PINNED_ORGANISMS = {
    "Homo sapiens": "NCBI:txid9606",
    "Mus musculus": "NCBI:txid10090",
    "Rattus norvegicus": "NCBI:txid10116",
    "Danio rerio": "NCBI:txid7955",
    "Drosophila melanogaster": "NCBI:txid7227",
    "Caenorhabditis elegans": "NCBI:txid6239",
    "Saccharomyces cerevisiae": "NCBI:txid4932",
    "Schizosaccharomyces pombe": "NCBI:txid4896",
    "Arabidopsis thaliana": "NCBI:txid3702",
    "Escherichia coli": "NCBI:txid562",
    "Xenopus laevis": "NCBI:txid8355",
    "Gallus gallus": "NCBI:txid9031",
}


@pytest.mark.parametrize(("label", "term_id"), sorted(PINNED_MODALITIES.items()))
def test_modality_ids_are_pinned(label: str, term_id: str) -> None:
    assert {t.label: t.id for t in MODALITIES}[label] == term_id


@pytest.mark.parametrize(("label", "term_id"), sorted(PINNED_ORGANISMS.items()))
def test_organism_ids_are_pinned(label: str, term_id: str) -> None:
    assert {t.label: t.id for t in ORGANISMS}[label] == term_id


@pytest.mark.parametrize(
    ("table", "pattern"),
    [(ORGANISMS, r"NCBI:txid[1-9]\d*"), (MODALITIES, r"obo:FBbi_\d{8}")],
    ids=["organisms", "modalities"],
)
def test_tables_are_unambiguous(table: tuple[Term, ...], pattern: str) -> None:
    ids = [t.id for t in table]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(pattern, i) for i in ids)
    # No name may stand for two terms: "yeast" must mean one thing.
    owner: dict[str, str] = {}
    for term in table:
        for name in term.names:
            key = " ".join(re.sub(r"[\s\-_.,'()/]+", " ", name.casefold()).split())
            assert owner.setdefault(key, term.id) == term.id, f"{name!r} names two terms"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NCBI:txid9606", "NCBI:txid9606"),
        ("9606", "NCBI:txid9606"),
        ("NCBITaxon:9606", "NCBI:txid9606"),
        ("http://purl.obolibrary.org/obo/NCBITaxon_7955", "NCBI:txid7955"),
        ("Homo sapiens", "NCBI:txid9606"),
        ("  homo SAPIENS ", "NCBI:txid9606"),
        ("human", "NCBI:txid9606"),
        ("mouse", "NCBI:txid10090"),
        ("rat", "NCBI:txid10116"),
        ("zebrafish", "NCBI:txid7955"),
        ("E. coli", "NCBI:txid562"),
        ("e coli", "NCBI:txid562"),
        ("budding yeast", "NCBI:txid4932"),
        ("S. cerevisiae", "NCBI:txid4932"),
        ("fission yeast", "NCBI:txid4896"),
        ("C. elegans", "NCBI:txid6239"),
    ],
)
def test_resolve_organism(text: str, expected: str) -> None:
    assert resolve_organism(text).id == expected


def test_unlisted_taxon_id_is_accepted_as_is() -> None:
    term = resolve_organism("NCBI:txid1234567")
    assert term == Term("NCBI:txid1234567", "NCBI:txid1234567")
    assert term.iri == "http://purl.obolibrary.org/obo/NCBITaxon_1234567"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("obo:FBbi_00000369", "obo:FBbi_00000369"),
        ("FBbi:00000369", "obo:FBbi_00000369"),
        ("http://purl.obolibrary.org/obo/FBbi_00000251", "obo:FBbi_00000251"),
        ("light sheet fluorescence microscopy", "obo:FBbi_00000369"),
        ("Light-Sheet", "obo:FBbi_00000369"),
        ("SPIM", "obo:FBbi_00000369"),
        ("confocal", "obo:FBbi_00000251"),
        ("Confocal Microscopy", "obo:FBbi_00000251"),
        ("spinning disk", "obo:FBbi_00000253"),
        ("two-photon", "obo:FBbi_00000254"),
        ("brightfield", "obo:FBbi_00000243"),
        ("wide-field fluorescence microscopy", "obo:FBbi_00000246"),
        ("FIB-SEM", "obo:FBbi_00050000"),
        ("SEM", "obo:FBbi_00000257"),
        ("TEM", "obo:FBbi_00000258"),
        ("dic", "obo:FBbi_00000245"),
        ("STED", "obo:FBbi_00000334"),
        ("SMLM", "obo:FBbi_00000333"),
    ],
)
def test_resolve_modality(text: str, expected: str) -> None:
    assert resolve_modality(text).id == expected


@pytest.mark.parametrize(
    ("resolve", "text", "suggested"),
    [
        (resolve_organism, "homo sapien", "Homo sapiens (NCBI:txid9606)"),
        (resolve_organism, "zebra fish larva", "Danio rerio (NCBI:txid7955)"),
        (resolve_modality, "confocl microscopy", "confocal microscopy (obo:FBbi_00000251)"),
        (resolve_modality, "electron tomography", "cryogenic electron tomography"),
    ],
    ids=["typo", "extra-word", "modality-typo", "near-term"],
)
def test_unknown_name_lists_closest_matches(
    resolve: Callable[[str], Term], text: str, suggested: str
) -> None:
    with pytest.raises(UnknownTermError) as info:
        resolve(text)
    assert isinstance(info.value, ResaveError)
    assert isinstance(info.value, ValueError)
    assert suggested in str(info.value)
    assert repr(text) in str(info.value)


def test_lookup_ranks_exact_and_prefix_matches_first() -> None:
    results = lookup("confocal")
    assert results[0] == ("modality", resolve_modality("confocal microscopy"))
    assert ("modality", resolve_modality("spinning disk")) in results
    assert all(kind in {"organism", "modality"} for kind, _ in results)


def test_lookup_finds_ids_and_both_kinds() -> None:
    assert lookup("9606")[0] == ("organism", resolve_organism("human"))
    assert lookup("obo:FBbi_00000369")[0] == ("modality", resolve_modality("SPIM"))
    kinds = {kind for kind, _ in lookup("yeast")}
    assert kinds == {"organism"}
    assert {t.id for _, t in lookup("yeast")} >= {"NCBI:txid4932", "NCBI:txid4896"}


def test_lookup_limit_and_nonsense() -> None:
    assert len(lookup("microscopy", limit=3)) == 3
    assert lookup("qqqqzzzz") == []


def test_format_lookup() -> None:
    lines = format_lookup(lookup("human", limit=1))
    assert lines == ["organism  NCBI:txid9606      Homo sapiens  [human]"]
