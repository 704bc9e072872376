"""Offline vocabularies for RO-Crate metadata: model organisms (NCBI Taxonomy) and imaging methods
(FBbi, the Biological Imaging Methods Ontology).

Users name a specimen or a modality either by id (``NCBI:txid9606``, ``obo:FBbi_00000369``) or by
a common name ("human", "light sheet"). Names are looked up in the small built-in tables below;
ids in the right form are accepted even when the table does not list them (the tables cannot
hold every taxon), so ``NCBI:txid1234567`` is fine while a misspelt *name* is an error that lists
the closest matches.

Sources of the ids:

* FBbi: the ontology release ``fbbi.obo`` (data-version releases/2020-11-06, repository
  ``Imaging-semantics/fbbi``), plus ``FBbi:00100015`` from the current edit file of
  ``foundingGIDE/fbbi`` (``src/ontology/reports/synonyms.tsv``). Labels are the ontology's.
* NCBI Taxonomy: the standard taxon ids of the species (``NCBITaxon_<n>`` in OBO).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ngff_resave.errors import ResaveError


class UnknownTermError(ResaveError, ValueError):
    """An organism or modality name is not in the built-in tables and is not a valid id."""


@dataclass(frozen=True)
class Term:
    """One ontology term: its compact id as written in the crate, its label and other names."""

    id: str
    label: str
    synonyms: tuple[str, ...] = ()

    @property
    def iri(self) -> str:
        """The resolvable OBO PURL of the term."""
        if self.id.startswith("NCBI:txid"):
            return f"http://purl.obolibrary.org/obo/NCBITaxon_{self.id.removeprefix('NCBI:txid')}"
        return f"http://purl.obolibrary.org/obo/{self.id.removeprefix('obo:')}"

    @property
    def names(self) -> tuple[str, ...]:
        """The label followed by the synonyms."""
        return (self.label, *self.synonyms)


def _taxon(number: int, label: str, *synonyms: str) -> Term:
    return Term(f"NCBI:txid{number}", label, synonyms)


def _fbbi(number: str, label: str, *synonyms: str) -> Term:
    return Term(f"obo:FBbi_{number}", label, synonyms)


ORGANISMS: tuple[Term, ...] = (
    _taxon(9606, "Homo sapiens", "human"),
    _taxon(10090, "Mus musculus", "mouse", "house mouse"),
    _taxon(10116, "Rattus norvegicus", "rat", "Norway rat"),
    _taxon(7955, "Danio rerio", "zebrafish"),
    _taxon(7227, "Drosophila melanogaster", "fruit fly", "fly", "drosophila"),
    _taxon(6239, "Caenorhabditis elegans", "C. elegans", "worm", "nematode"),
    _taxon(
        4932,
        "Saccharomyces cerevisiae",
        "S. cerevisiae",
        "budding yeast",
        "baker's yeast",
        "yeast",
    ),
    _taxon(4896, "Schizosaccharomyces pombe", "S. pombe", "fission yeast"),
    _taxon(3702, "Arabidopsis thaliana", "arabidopsis", "thale cress"),
    _taxon(562, "Escherichia coli", "E. coli"),
    _taxon(8355, "Xenopus laevis", "African clawed frog", "xenopus"),
    _taxon(8364, "Xenopus tropicalis", "western clawed frog"),
    _taxon(9031, "Gallus gallus", "chicken"),
    _taxon(8090, "Oryzias latipes", "medaka", "Japanese medaka"),
    _taxon(44689, "Dictyostelium discoideum", "dictyostelium", "slime mold"),
    _taxon(3055, "Chlamydomonas reinhardtii", "chlamydomonas"),
)

MODALITIES: tuple[Term, ...] = (
    _fbbi("00000243", "bright-field microscopy", "brightfield", "bright field", "bright-field"),
    _fbbi("00000244", "dark-field microscopy", "darkfield", "dark field"),
    _fbbi("00000245", "differential interference contrast microscopy", "DIC", "Nomarski"),
    _fbbi("00000247", "phase contrast microscopy", "phase contrast"),
    _fbbi("00000248", "polarization microscopy", "polarized light microscopy"),
    # FBbi has no separate wide-field term: plain fluorescence microscopy is the wide-field case.
    _fbbi(
        "00000246",
        "fluorescence microscopy",
        "wide-field fluorescence microscopy",
        "widefield fluorescence microscopy",
        "wide-field fluorescence",
        "widefield",
        "epifluorescence microscopy",
        "epifluorescence",
    ),
    _fbbi("00000251", "confocal microscopy", "confocal"),
    _fbbi(
        "00000252",
        "single-spot confocal microscopy",
        "laser scanning confocal microscopy",
        "LSCM",
        "CLSM",
        "point scanning confocal microscopy",
    ),
    _fbbi("00000253", "spinning disk confocal microscopy", "spinning disk", "spinning disc"),
    _fbbi("00000254", "two-photon laser scanning microscopy", "two-photon", "2-photon", "2P"),
    _fbbi("00000255", "multi-photon microscopy", "multiphoton microscopy", "multiphoton"),
    _fbbi(
        "00000369",
        "SPIM",
        "light sheet fluorescence microscopy",
        "light sheet microscopy",
        "light-sheet microscopy",
        "light sheet",
        "selective plane illumination microscopy",
        "LSFM",
    ),
    _fbbi("00000617", "evanescent wave microscopy", "TIRF", "total internal reflection"),
    _fbbi("00000332", "structured illumination microscopy (SIM)", "SIM"),
    _fbbi("00000334", "stimulated emission depletion (STED)", "STED"),
    _fbbi(
        "00000333",
        "point-localization method",
        "single molecule localization microscopy",
        "SMLM",
        "localization microscopy",
    ),
    _fbbi("00000335", "PALM (photoactivation localization microscopy)", "PALM"),
    _fbbi("00000336", "STORM (stochastic optical reconstruction microscopy)", "STORM", "dSTORM"),
    _fbbi("00000339", "PAINT (point accumulation for imaging in nanoscale topography)", "PAINT"),
    _fbbi("00000321", "resolution-enhancing method", "super-resolution microscopy"),
    _fbbi("00000256", "electron microscopy", "EM"),
    _fbbi("00000257", "scanning electron microscopy (SEM)", "SEM"),
    _fbbi("00000258", "transmission electron microscopy (TEM)", "TEM"),
    _fbbi("00000380", "scanning-transmission electron microscopy", "STEM"),
    _fbbi("00000585", "serial block face SEM (SBFSEM)", "SBF-SEM", "SBEM"),
    _fbbi(
        "00050000",
        "focussed ion beam scanning electron microscopy (FIB-SEM)",
        "FIB-SEM",
        "focused ion beam scanning electron microscopy",
    ),
    _fbbi("00100015", "cryogenic electron tomography", "cryo-ET", "cryo-electron tomography"),
    _fbbi("00000260", "X-ray microscopy"),
    _fbbi("00001002", "X-ray computed tomography", "micro-CT", "CT"),
    _fbbi("00000371", "OCT", "optical coherence tomography"),
    _fbbi("00000368", "FLIM", "fluorescence lifetime imaging"),
    _fbbi("00000259", "atomic force microscopy", "AFM"),
    _fbbi("00000249", "time lapse microscopy", "time-lapse"),
)

_TAXON_ID = re.compile(
    r"^(?:NCBI:txid|NCBITaxon:|NCBITaxon_|txid|taxon:|"
    r"https?://purl\.obolibrary\.org/obo/NCBITaxon_)?(\d{1,9})$",
    re.IGNORECASE,
)
_FBBI_ID = re.compile(
    r"^(?:obo:|https?://purl\.obolibrary\.org/obo/)?FBbi[:_](\d{8})$", re.IGNORECASE
)


def _normalize(text: str) -> str:
    """Case-, punctuation- and spacing-insensitive form of a name ("E. coli" == "e coli")."""
    return " ".join(re.sub(r"[\s\-_.,'()/]+", " ", text.casefold()).split())


def _index(terms: tuple[Term, ...]) -> dict[str, Term]:
    index: dict[str, Term] = {}
    for term in terms:
        for name in (*term.names, term.id):
            index.setdefault(_normalize(name), term)
    return index


_ORGANISM_INDEX = _index(ORGANISMS)
_MODALITY_INDEX = _index(MODALITIES)
_BY_ID = {term.id: term for term in (*ORGANISMS, *MODALITIES)}


def _suggest(text: str, terms: tuple[Term, ...], limit: int = 5) -> list[Term]:
    """The terms whose names are closest to ``text`` (difflib), best first, no repeats."""
    names = {_normalize(name): term for term in terms for name in term.names}
    close = difflib.get_close_matches(_normalize(text), list(names), n=limit * 3, cutoff=0.45)
    query = _normalize(text)
    # Names that contain the query ("yeast" in "fission yeast") are good hints difflib may miss.
    close += [name for name in names if query and query in name and name not in close]
    found: list[Term] = []
    for name in close:
        if names[name] not in found:
            found.append(names[name])
    return found[:limit]


def _unknown(kind: str, text: str, terms: tuple[Term, ...], example: str) -> UnknownTermError:
    hints = _suggest(text, terms)
    closest = "; ".join(f"{t.label} ({t.id})" for t in hints) if hints else "none"
    return UnknownTermError(
        f"unknown {kind} {text!r}; closest matches: {closest}. Give a listed name or an id "
        f"such as {example} (search with `ngff-resave lookup TEXT`)"
    )


def resolve_organism(text: str) -> Term:
    """The NCBI Taxonomy term for an id (``NCBI:txid9606``, ``9606``, ``NCBITaxon:9606``) or a
    scientific/common name ("Homo sapiens", "human"; case-insensitive).

    Raises :class:`UnknownTermError`, listing the closest names, for anything else.
    """
    stripped = text.strip()
    if match := _TAXON_ID.match(stripped):
        term_id = f"NCBI:txid{int(match.group(1))}"
        return _BY_ID.get(term_id, Term(term_id, term_id))
    if term := _ORGANISM_INDEX.get(_normalize(stripped)):
        return term
    raise _unknown("organism", text, ORGANISMS, "NCBI:txid9606")


def resolve_modality(text: str) -> Term:
    """The FBbi term for an id (``obo:FBbi_00000369``, ``FBbi:00000369``, the OBO PURL) or a
    label/synonym ("confocal microscopy", "light sheet"; case-insensitive).

    Raises :class:`UnknownTermError`, listing the closest names, for anything else.
    """
    stripped = text.strip()
    if match := _FBBI_ID.match(stripped):
        term_id = f"obo:FBbi_{match.group(1)}"
        return _BY_ID.get(term_id, Term(term_id, term_id))
    if term := _MODALITY_INDEX.get(_normalize(stripped)):
        return term
    raise _unknown("modality", text, MODALITIES, "obo:FBbi_00000369")


def _score(query: str, term: Term) -> float:
    """How well ``query`` (normalized) matches ``term``: 1 exact, 0.9 prefix, 0.8 substring,
    else the best difflib ratio over the term's names."""
    best = 0.0
    for name in (*term.names, term.id):
        candidate = _normalize(name)
        if query == candidate:
            return 1.0
        if candidate.startswith(query):
            best = max(best, 0.9)
        elif query in candidate:
            best = max(best, 0.8)
        else:
            best = max(best, difflib.SequenceMatcher(None, query, candidate).ratio())
    return best


def lookup(query: str, limit: int = 10) -> list[tuple[str, Term]]:
    """Search both tables: ``(kind, term)`` pairs, kind ``"organism"`` or ``"modality"``, best
    match first. An exact id (``NCBI:txid…``/``obo:FBbi_…``) not in the tables is returned too."""
    stripped = query.strip()
    results: list[tuple[float, str, Term]] = []
    for kind, resolve in (("organism", resolve_organism), ("modality", resolve_modality)):
        try:
            exact = resolve(stripped)
        except UnknownTermError:
            continue
        results.append((2.0, kind, exact))
    wanted = _normalize(stripped)
    if wanted:
        for kind, terms in (("organism", ORGANISMS), ("modality", MODALITIES)):
            for term in terms:
                score = _score(wanted, term)
                if score >= 0.6:
                    results.append((score, kind, term))
    results.sort(key=lambda item: (-item[0], item[1], item[2].label.casefold()))
    seen: set[str] = set()
    found: list[tuple[str, Term]] = []
    for _score_value, kind, term in results:
        if term.id not in seen:
            seen.add(term.id)
            found.append((kind, term))
    return found[:limit]


def format_lookup(results: list[tuple[str, Term]]) -> list[str]:
    """Lines for the ``lookup`` command: ``kind  id  label (synonyms)``, aligned."""
    lines = []
    for kind, term in results:
        extra = f"  [{', '.join(term.synonyms)}]" if term.synonyms else ""
        lines.append(f"{kind:<9} {term.id:<18} {term.label}{extra}")
    return lines
