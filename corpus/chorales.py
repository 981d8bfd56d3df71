"""The built-in band corpus: the Bach chorales that the music21 wheel ships, as four-part pieces.

A chorale is kept when it is in 4/4 throughout and has exactly one part each named soprano, alto, tenor
and bass (the first word of the part name; doubling instruments are ignored). The rest are counted by
reason: ``not_4_4``, ``not_satb`` (other voices, two sopranos, unnamed spines), ``unreadable_files``;
a ``.krn`` copy of a chorale that also ships as MusicXML is ``duplicate_files``. Ties are merged, grace
notes dropped, and a pickup bar is padded so that barlines fall on multiples of 16 sixteenths.
"""

from pathlib import Path

import numpy as np

from latentlive.corpus.band_rolls import STEPS
from latentlive.corpus.multipart_midi import RawPart, RawPiece, SkippedFile

VOICES = ("soprano", "alto", "tenor", "bass")
_SUFFIX_PREFERENCE = (".mxl", ".xml", ".krn")


def chorale_paths() -> tuple[list[Path], int]:
    """The chorale scores of the music21 corpus, one per chorale, sorted by name, and the duplicates left out."""
    from music21 import corpus  # music21 takes about a second to import: only when parsing

    scores = [p for p in corpus.getComposer("bach") if p.suffix in _SUFFIX_PREFERENCE]  # not .rntxt analyses
    best: dict[str, Path] = {}
    for path in scores:
        other = best.get(path.stem)
        if other is None or _SUFFIX_PREFERENCE.index(path.suffix) < _SUFFIX_PREFERENCE.index(other.suffix):
            best[path.stem] = path
    return [best[stem] for stem in sorted(best)], len(scores) - len(best)


def read_chorale(path: Path) -> RawPiece:
    """The four voices of one chorale score; raises SkippedFile (not_4_4, not_satb, unreadable_files)."""
    from music21 import converter, meter

    try:
        score = converter.parse(path, forceSource=True)  # forceSource: no pickles written beside the corpus
    except Exception as error:  # music21 raises many types on a broken score
        raise SkippedFile("unreadable_files", f"{path}: music21 cannot parse it ({error})") from None
    meters = {sig.ratioString for sig in score.recurse().getElementsByClass(meter.TimeSignature)}
    if meters - {"4/4"}:
        raise SkippedFile("not_4_4", f"{path}: not in 4/4 ({', '.join(sorted(meters))})")
    voices = {}
    for part in score.parts:
        words = (part.partName or "").lower().split()
        if words and words[0] in VOICES:
            if words[0] in voices:
                raise SkippedFile("not_satb", f"{path}: two parts named {words[0]}")
            voices[words[0]] = part
    if len(voices) != len(VOICES):
        raise SkippedFile("not_satb", f"{path}: not the four voices {', '.join(VOICES)}")
    measures = voices["soprano"].getElementsByClass("Measure")
    pickup = round(float(measures[0].paddingLeft) * 4) % STEPS if len(measures) else 0
    parts = []
    for voice in VOICES:
        rows = []
        for note in voices[voice].flatten().stripTies().notes:  # tied notes merged
            if note.duration.isGrace or note.quarterLength <= 0:
                continue
            begin = int(np.floor(float(note.offset) * 4 + 0.5))
            end = int(np.floor(float(note.offset + note.quarterLength) * 4 + 0.5))
            rows += [(begin + pickup, max(end - begin, 1), p.midi) for p in note.pitches]
        parts.append(RawPart((voice,), np.array(rows, dtype=np.int32).reshape(-1, 3)))
    return RawPiece(path.stem, str(path), parts)
